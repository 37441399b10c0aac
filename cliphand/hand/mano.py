"""MANO in numpy: the forward pass, FreiHAND's 21 keypoints from a posed mesh, and the mean-hand template.
The model file is read by :func:`cliphand.hand.mano_file.load_mano`.

MANO forward pass (MANO's ``ready_arguments`` + ``lbs.verts_core``; Romero et al., SIGGRAPH Asia 2017):
full pose = global rotation (3) + [``hands_mean`` unless ``flat_hand_mean``] + 45 finger parameters
(axis-angle, no PCA); ``v_shaped = v_template + shapedirs @ betas``; ``J = J_regressor @ v_shaped``;
``v_posed = v_shaped + posedirs @ concat((R_i - I).ravel() for the 15 non-root joints)``; the joints'
global transforms along ``kintree_table`` (the root rotates about ``J[0]``); linear blend skinning of
``v_posed``. The 16 output joints are the posed skeleton (``Jtr``: the translations of the global joint
transforms), which is what FreiHAND's keypoints use.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from cliphand.errors import DataError
from cliphand.hand.mano_file import kinematic_parents, load_mano

#: FreiHAND's fingertip vertices: thumb, index, middle, ring, little (lmb-freiburg/freihand utils/mano_utils.py).
FREIHAND_TIPS = (744, 320, 443, 555, 672)
#: Fingertip vertices of CMR/MobRecon/the CLIP-Hand3D authors: 333/444 for index/middle (project NOTES §4);
#: thumb, ring and little as FreiHAND's.
AUTHORS_TIPS = (744, 333, 444, 555, 672)
#: FreiHAND index of each of MANO's 16 joints (0 wrist, 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb).
MANO_TO_FREIHAND = (0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3)
#: FreiHAND indices of the five fingertips (thumb, index, middle, ring, little).
FREIHAND_TIP_SLOTS = (4, 8, 12, 16, 20)
#: FreiHAND's root keypoint for placing the mesh (middle-finger MCP; ``HandModel.pose_by_root(root_id=9)``).
FREIHAND_ROOT = 9

# --- forward pass ---------------------------------------------------------------------------------

def _rodrigues(rvec: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3) (as ``cv2.Rodrigues``)."""
    r = np.asarray(rvec, np.float64)
    theta = np.linalg.norm(r, axis=-1)
    k = r / np.where(theta > 0, theta, 1.0)[..., None]
    kx = np.zeros(r.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2] = -k[..., 2], k[..., 1]
    kx[..., 1, 0], kx[..., 1, 2] = k[..., 2], -k[..., 0]
    kx[..., 2, 0], kx[..., 2, 1] = -k[..., 1], k[..., 0]
    s = np.sin(theta)[..., None, None]
    c = np.cos(theta)[..., None, None]
    return np.eye(3) + s * kx + (1.0 - c) * (kx @ kx)


def _forward_batch(model: dict, full_pose: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """full_pose (N, K, 3) axis-angle (hands_mean already applied), betas (N, B') -> verts (N, V, 3), Jtr (N, K, 3)."""
    v_template, shapedirs, posedirs = model["v_template"], model["shapedirs"], model["posedirs"]
    V, K = v_template.shape[0], model["kintree_table"].shape[1]
    N, nb = betas.shape
    parents = kinematic_parents(model["kintree_table"])
    v_shaped = v_template + (betas @ shapedirs[:, :, :nb].reshape(V * 3, nb).T).reshape(N, V, 3)
    J = np.einsum("kv,nvc->nkc", model["J_regressor"], v_shaped)
    R = _rodrigues(full_pose)  # (N, K, 3, 3)
    feat = (R[:, 1:] - np.eye(3)).reshape(N, -1)  # lrotmin: (R - I).ravel() of the non-root joints
    v_posed = v_shaped + (feat @ posedirs.reshape(V * 3, -1).T).reshape(N, V, 3)
    G = np.zeros((N, K, 4, 4))
    G[:, :, 3, 3] = 1.0
    for i in range(K):
        local = np.zeros((N, 4, 4))
        local[:, :3, :3] = R[:, i]
        local[:, 3, 3] = 1.0
        if parents[i] < 0:
            local[:, :3, 3] = J[:, i]
            G[:, i] = local
        else:
            p = parents[i]
            local[:, :3, 3] = J[:, i] - J[:, p]
            G[:, i] = G[:, p] @ local
    jtr = G[:, :, :3, 3].copy()
    A = G[:, :, :3, :].copy()  # (N, K, 3, 4): transforms of rest-pose points
    A[:, :, :, 3] -= np.einsum("nkab,nkb->nka", G[:, :, :3, :3], J)
    T = (model["weights"] @ A.reshape(N, K, 12)).reshape(N, V, 3, 4)
    verts = np.einsum("nvab,nvb->nva", T[..., :3], v_posed) + T[..., 3]
    return verts, jtr


def mano_forward(model: dict, pose: np.ndarray, betas: np.ndarray,
                 flat_hand_mean: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pose MANO: shape blend, joint regression, pose blend, linear blend skinning along the kinematic tree.

    Args:
        model: :func:`load_mano`'s dict.
        pose: (3 K,) = (48,) axis-angle, global rotation first then the 15 finger joints in MANO's joint
            order (no PCA), or (N, 48) for a batch.
        betas: (B',) shape coefficients with B' <= B (10 for MANO; missing ones are 0), or (N, B').
        flat_hand_mean: False adds ``hands_mean`` to the 45 finger parameters (MANO's default and FreiHAND's
            ``use_mean_pose=True``); True poses relative to the flat hand.
    Returns:
        verts (V, 3) and joints (K, 3) = (778, 3), (16, 3) float64 metres in MANO's frame (no translation;
        the global rotation turns about rest joint 0), or (N, V, 3), (N, K, 3). The joints are the posed
        skeleton (``Jtr`` of MANO's ``verts_core``), MANO's joint order.
    Raises:
        ValueError on wrong pose/betas shapes.
    Source: MANO ``webuser/smpl_handpca_wrapper_HAND_only.py`` (``load_model``), ``verts.py``, ``lbs.py``,
    ``posemapper.py`` (``lrotmin``).
    """
    K = model["kintree_table"].shape[1]
    B = model["shapedirs"].shape[2]
    pose = np.asarray(pose, np.float64)
    betas = np.asarray(betas, np.float64)
    single = pose.ndim == 1
    pose2 = pose.reshape(1, -1) if single else pose
    betas2 = betas.reshape(1, -1) if betas.ndim == 1 else betas
    if pose2.ndim != 2 or pose2.shape[1] != 3 * K:
        raise ValueError(f"pose must be ({3 * K},) or (N, {3 * K}), got {pose.shape}")
    if betas2.ndim != 2 or betas2.shape[1] > B:
        raise ValueError(f"betas must be (B',) or (N, B') with B' <= {B}, got {betas.shape}")
    if betas2.shape[0] != pose2.shape[0]:
        if betas2.shape[0] != 1:
            raise ValueError(f"pose {pose.shape} and betas {betas.shape} disagree on the batch size")
        betas2 = np.repeat(betas2, pose2.shape[0], axis=0)
    full = pose2.copy()
    if not flat_hand_mean:
        full[:, 3:] += model["hands_mean"]
    verts, joints = _forward_batch(model, full.reshape(-1, K, 3), betas2)
    return (verts[0], joints[0]) if single else (verts, joints)


def freihand_joints(verts: np.ndarray, joints16: np.ndarray, tips: Sequence[int] = FREIHAND_TIPS) -> np.ndarray:
    """FreiHAND's 21 keypoints from a posed MANO mesh.

    Args:
        verts: (..., V, 3) posed MANO vertices. joints16: (..., 16, 3) posed MANO joints (MANO order:
            0 wrist, 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb).
        tips: fingertip vertex indices thumb, index, middle, ring, little (:data:`FREIHAND_TIPS`, or
            :data:`AUTHORS_TIPS` for CMR/MobRecon's 333/444).
    Returns:
        (..., 21, 3) in FreiHAND order: wrist; thumb MCP, PIP, DIP, tip; index MCP, PIP, DIP, tip; middle;
        ring; little; same units and frame as the input.
    Raises:
        ValueError on wrong shapes or tip indices.
    Source: lmb-freiburg/freihand ``utils/mano_utils.py`` (``get_keypoints_from_mesh_ch``, ``kpId2vertices``).
    """
    verts = np.asarray(verts)
    joints16 = np.asarray(joints16)
    tips = [int(t) for t in tips]
    if joints16.shape[-2:] != (16, 3):
        raise ValueError(f"joints16 must be (..., 16, 3), got {joints16.shape}")
    if verts.ndim < 2 or verts.shape[-1] != 3 or verts.shape[:-2] != joints16.shape[:-2]:
        raise ValueError(f"verts must be (..., V, 3) matching joints16 {joints16.shape}, got {verts.shape}")
    if len(tips) != 5 or min(tips) < 0 or max(tips) >= verts.shape[-2]:
        raise ValueError(f"tips must be 5 vertex indices in 0..{verts.shape[-2] - 1}, got {tips}")
    out = np.empty(joints16.shape[:-2] + (21, 3), np.result_type(verts, joints16))
    out[..., list(MANO_TO_FREIHAND), :] = joints16
    out[..., list(FREIHAND_TIP_SLOTS), :] = verts[..., tips, :]
    return out


def mano_template(path: str | os.PathLike, tips: Sequence[int] = FREIHAND_TIPS) -> dict[str, np.ndarray]:
    """The mean-pose MANO mesh as a template dict (the form of :func:`cliphand.hand.template.read_template`).

    Pose: ``hands_mean`` (``flat_hand_mean=False``), zero global rotation, zero betas; MANO's frame.
    Args:
        path: ``MANO_RIGHT.pkl``. tips: fingertip vertices (:func:`freihand_joints`).
    Returns:
        ``verts`` (778, 3) float32 metres, ``joints`` (21, 3) float32 metres FreiHAND order,
        ``faces`` (1538, 3) int64.
    Raises:
        DataError naming the file (see :func:`load_mano`).
    """
    model = load_mano(path)
    K, B = model["kintree_table"].shape[1], model["shapedirs"].shape[2]
    verts, j16 = mano_forward(model, np.zeros(3 * K), np.zeros(B), flat_hand_mean=False)
    if j16.shape != (16, 3):
        raise DataError(f"{path}: FreiHAND keypoints need MANO's 16 joints, the file has {j16.shape[0]}")
    try:
        joints = freihand_joints(verts, j16, tips)
    except ValueError as e:
        raise DataError(f"{path}: {e}") from e
    return {"verts": verts.astype(np.float32), "joints": joints.astype(np.float32),
            "faces": model["f"].astype(np.int64)}
