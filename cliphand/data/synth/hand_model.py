"""The rigged WebXR generic hand (glTF 2.0 skin) and linear blend skinning.

Source of the asset: npm ``@webxr-input-profiles/assets`` 1.0.20, ``generic-hand/right.glb`` (MIT), see
``../shared/data/webxr_generic_hand/README.md``: 1360 vertices, 2314 triangles, 25 skin joints, metres.

Posing convention (used by :meth:`RiggedHand.pose`): ``rotations[j]`` is a 3x3 rotation whose axes are
those of the template (glTF world) frame; it turns the part of the hand below joint ``j`` about the
joint's **bind** position, before the parent's motion is applied. Forward kinematics:

    A_root = T(b_root) R_root T(-b_root),     A_j = A_parent(j) T(b_j) R_j T(-b_j)

(``b_j`` the bind position of joint j, ``T`` a translation), so a child's rotation axis, given in bind
coordinates, is carried along by its ancestors. Skinning (glTF 2.0 spec, "Skins"):
``v' = sum_j w_vj A_j G_j IBM_j v`` with ``G_j`` the joint's bind world matrix and ``IBM_j`` its inverse
bind matrix (``G_j IBM_j`` is the identity up to float error for this asset). Identity rotations give the
bind pose, i.e. the template.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cliphand.errors import DataError

#: The 25 skin joints of the WebXR hand and their parents (by name), in topological order.
SKIN_JOINT_NAMES = [
    "wrist",
    "thumb-metacarpal", "thumb-phalanx-proximal", "thumb-phalanx-distal", "thumb-tip",
    *[f"{f}-finger-{p}" for f in ("index", "middle", "ring", "pinky")
      for p in ("metacarpal", "phalanx-proximal", "phalanx-intermediate", "phalanx-distal", "tip")],
]
PARENTS = np.array([-1, 0, 1, 2, 3] + [i for k in range(4) for i in (0, 5 + 5 * k, 6 + 5 * k, 7 + 5 * k, 8 + 5 * k)])

#: Indices (into the 25 skin joints) of the 21 FreiHAND-order joints: wrist; thumb metacarpal, proximal,
#: distal, tip (= thumb MCP, PIP, DIP, tip); for index/middle/ring/little the proximal, intermediate,
#: distal phalanx and the tip (= MCP, PIP, DIP, tip). The finger metacarpals are not among the 21.
JOINTS21 = np.array([0, 1, 2, 3, 4] + [j for k in range(4) for j in range(6 + 5 * k, 10 + 5 * k)])

_COMPONENT = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def _node_matrix(node) -> np.ndarray:
    """Local 4x4 matrix of a glTF node (``matrix`` column-major, or T * R * S)."""
    if node.matrix is not None:
        return np.array(node.matrix, dtype=np.float64).reshape(4, 4).T
    m = np.eye(4)
    if node.rotation is not None:
        x, y, z, w = node.rotation
        m[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    if node.scale is not None:
        m[:3, :3] = m[:3, :3] * np.asarray(node.scale, dtype=np.float64)[None, :]
    if node.translation is not None:
        m[:3, 3] = node.translation
    return m


def weld_index(verts: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """(V,) index of the first vertex at the same position (within ``tol``, metres) as each vertex."""
    q = np.round(np.asarray(verts) / tol).astype(np.int64)
    _, first, inv = np.unique(q, axis=0, return_index=True, return_inverse=True)
    return first[inv.ravel()].astype(np.int64)


@dataclass
class RiggedHand:
    """A skinned hand mesh, template (bind pose) in metres, glTF frame.

    Attributes:
        verts: (V, 3) float64 template vertices, metres (V = 1360 for the WebXR hand).
        faces: (F, 3) int32 triangle vertex indices (F = 2314).
        joint_names: the 25 skin joint names (:data:`SKIN_JOINT_NAMES` order).
        parents: (25,) int parent index per joint, -1 for the root (wrist).
        inverse_bind: (25, 4, 4) inverse bind matrices from the file.
        bind_world: (25, 4, 4) world matrices of the joints in the bind pose (from the node tree).
        weights: (V, 25) float64 dense skinning weights (JOINTS_0/WEIGHTS_0), rows sum to 1.
        path: the file it came from.
        weld: (V,) int64 index of the first vertex at the same bind position (the asset splits the
            surface along UV seams; welded, the WebXR hand is a closed surface, and shading averages
            normals over welded vertices).
        label_offsets: optional (21, 3) metres, template frame: the 21 label joints (FreiHAND order) sit at
            the bind positions of their skin joints plus these offsets, and move with the skin joint's parent
            (the wrist with itself), i.e. rigidly with the bone they sit on. None = the asset's own joints.
            The WebXR "tip" joints sit mid-way along the distal phalanx and its thumb base 5 cm from the wrist,
            unlike FreiHAND's and Ge et al.'s labels (tips on the skin of the fingertip); see
            :func:`cliphand.data.synth.articulation.calibrate_label_offsets`.
    """

    verts: np.ndarray
    faces: np.ndarray
    joint_names: list
    parents: np.ndarray
    inverse_bind: np.ndarray
    bind_world: np.ndarray
    weights: np.ndarray
    path: str = ""
    weld: np.ndarray | None = None
    label_offsets: np.ndarray | None = None

    def __post_init__(self):
        if self.weld is None:
            self.weld = weld_index(self.verts)
        if self.label_offsets is not None:
            self.label_offsets = np.asarray(self.label_offsets, dtype=np.float64)
            if self.label_offsets.shape != (21, 3) or not np.all(np.isfinite(self.label_offsets)):
                raise ValueError(f"label_offsets must be finite (21, 3) metres, got {self.label_offsets.shape}")

    @property
    def label_carriers(self) -> np.ndarray:
        """(21,) index of the skin joint whose transform carries each label joint: the parent of its skin
        joint (the bone it ends), the wrist for the wrist."""
        return np.where(JOINTS21 == 0, 0, self.parents[JOINTS21])

    @property
    def bind_joints(self) -> np.ndarray:
        """(25, 3) bind positions of the skin joints, metres."""
        return self.bind_world[:, :3, 3].copy()

    @property
    def joints21(self) -> np.ndarray:
        """(21, 3) bind positions of the 21 FreiHAND-order label joints, metres (skin joints + label_offsets)."""
        j = self.bind_world[JOINTS21, :3, 3].copy()
        return j if self.label_offsets is None else j + self.label_offsets

    @classmethod
    def from_glb(cls, path: str | os.PathLike) -> "RiggedHand":
        """Read a skinned glTF binary (``.glb``) with pygltflib.

        Takes the first mesh primitive (POSITION, JOINTS_0, WEIGHTS_0, triangle indices) and the first skin.
        Joint names must be the WebXR hand names (:data:`SKIN_JOINT_NAMES`); the hierarchy is taken from
        those names (the WebXR file keeps all joints flat under one armature node).

        Raises:
            DataError: the file is missing or unreadable, has no skin or mesh, or lacks a WebXR joint.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: rigged hand file not found")
        try:
            import pygltflib
            g = pygltflib.GLTF2().load(str(path))
            blob = g.binary_blob()
        except Exception as e:  # pygltflib raises assorted errors on corrupt input
            raise DataError(f"{path}: cannot read as glTF binary ({type(e).__name__}: {e})") from e
        if g is None or not g.skins:
            raise DataError(f"{path}: glTF has no skin (a rigged hand is required)")
        if not g.meshes or not g.meshes[0].primitives or blob is None:
            raise DataError(f"{path}: glTF has no mesh primitive or no binary buffer")

        def accessor(i):
            a = g.accessors[i]
            bv = g.bufferViews[a.bufferView]
            n = _NCOMP[a.type]
            dt = np.dtype(_COMPONENT[a.componentType])
            stride = bv.byteStride or dt.itemsize * n
            start = (bv.byteOffset or 0) + (a.byteOffset or 0)
            if stride == dt.itemsize * n:
                arr = np.frombuffer(blob, dt, a.count * n, start).reshape(a.count, n)
            else:  # interleaved buffer view
                raw = np.frombuffer(blob, np.uint8, stride * (a.count - 1) + dt.itemsize * n, start)
                arr = np.stack([raw[k * stride:k * stride + dt.itemsize * n].view(dt) for k in range(a.count)])
            if a.normalized and dt.kind in "ui":
                arr = arr.astype(np.float64) / np.iinfo(dt).max
            return arr

        try:
            prim = g.meshes[0].primitives[0]
            skin = g.skins[0]
            verts = accessor(prim.attributes.POSITION).astype(np.float64)
            faces = accessor(prim.indices).reshape(-1, 3).astype(np.int32)
            jidx = accessor(prim.attributes.JOINTS_0).astype(np.int64)
            wts = accessor(prim.attributes.WEIGHTS_0).astype(np.float64)
            ibm = accessor(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)
        except (TypeError, IndexError, KeyError, ValueError) as e:
            raise DataError(f"{path}: mesh or skin data missing or malformed ({e})") from e

        # world matrices of all nodes from the scene graph
        world = {}
        parent_of = {c: i for i, n in enumerate(g.nodes) for c in (n.children or [])}

        def world_of(i):
            if i not in world:
                local = _node_matrix(g.nodes[i])
                world[i] = world_of(parent_of[i]) @ local if i in parent_of else local
            return world[i]

        names = [g.nodes[j].name for j in skin.joints]
        missing = [n for n in SKIN_JOINT_NAMES if n not in names]
        if missing:
            raise DataError(f"{path}: skin lacks WebXR hand joints {missing}")
        order = [names.index(n) for n in SKIN_JOINT_NAMES]  # our index -> skin index
        bind_world = np.stack([world_of(skin.joints[k]) for k in order])
        ibm = ibm[order]
        # dense (V, 25) weights in our joint order
        remap = np.full(len(names), -1)
        remap[order] = np.arange(len(order))
        dense = np.zeros((len(verts), len(SKIN_JOINT_NAMES)))
        jj = remap[jidx]
        if (jj[wts > 0] < 0).any():
            raise DataError(f"{path}: vertices weighted to joints outside the WebXR hand skeleton")
        np.add.at(dense, (np.repeat(np.arange(len(verts)), jj.shape[1]), np.maximum(jj, 0).ravel()), wts.ravel())
        s = dense.sum(1, keepdims=True)
        if (s <= 0).any():
            raise DataError(f"{path}: {int((s <= 0).sum())} vertices have no skin weight")
        return cls(verts=verts, faces=faces, joint_names=list(SKIN_JOINT_NAMES), parents=PARENTS.copy(),
                   inverse_bind=ibm, bind_world=bind_world, weights=dense / s, path=str(path))

    def with_bone_scales(self, scales: np.ndarray) -> "RiggedHand":
        """The same rig with each bone lengthened by a factor (a different hand shape, same topology).

        Bone j runs from the bind position of skin joint ``parents[j]`` to that of joint j. New bind positions
        follow the chains from the wrist: ``b'_j = b'_parent + scales[j] (b_j - b_parent)``; every vertex moves by
        the skin-weighted mean of its joints' displacements (segments shift with their joints; the skin between
        two joints stretches with the weights); the label offsets scale with their carrier bone. Joint frames
        keep their orientation, so articulation axes are unchanged.

        Args:
            scales: (25,) positive factors per skin joint (the wrist's is ignored).
        Returns:
            a new :class:`RiggedHand`.
        Raises:
            ValueError: scales not (25,) positive finite.
        """
        scales = np.asarray(scales, np.float64)
        if scales.shape != (len(self.joint_names),) or not np.all(np.isfinite(scales) & (scales > 0)):
            raise ValueError(f"bone scales must be ({len(self.joint_names)},) positive, got {scales.shape}")
        b = self.bind_joints
        nb = b.copy()
        for j in range(len(b)):  # topological order: parents first
            p = self.parents[j]
            if p >= 0:
                nb[j] = nb[p] + scales[j] * (b[j] - b[p])
        world = self.bind_world.copy()
        world[:, :3, 3] = nb
        verts = self.verts + self.weights @ (nb - b)
        offsets = None
        if self.label_offsets is not None:
            carrier_scale = np.where(JOINTS21 == 0, 1.0, scales[JOINTS21])
            offsets = self.label_offsets * carrier_scale[:, None]
        return RiggedHand(verts=verts, faces=self.faces, joint_names=self.joint_names, parents=self.parents,
                          inverse_bind=np.linalg.inv(world), bind_world=world, weights=self.weights, path=self.path,
                          weld=self.weld, label_offsets=offsets)

    def transforms(self, rotations: np.ndarray | None = None) -> np.ndarray:
        """Posed joint transforms ``A_j`` (module docstring) acting on bind-pose points.

        Args:
            rotations: (25, 3, 3) local rotations (template-frame axes, about each joint's bind position);
                None for the bind pose.
        Returns:
            (25, 4, 4) float64.
        """
        n = len(self.joint_names)
        A = np.tile(np.eye(4), (n, 1, 1))
        if rotations is None:
            return A
        rotations = np.asarray(rotations, dtype=np.float64)
        if rotations.shape != (n, 3, 3):
            raise ValueError(f"rotations must be ({n}, 3, 3), got {rotations.shape}")
        b = self.bind_joints
        for j in range(n):  # topological order: parents first
            L = np.eye(4)
            L[:3, :3] = rotations[j]
            L[:3, 3] = b[j] - rotations[j] @ b[j]
            A[j] = L if self.parents[j] < 0 else A[self.parents[j]] @ L
        return A

    def pose(self, rotations: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Linear blend skinning of the template.

        Args:
            rotations: (25, 3, 3) local joint rotations, axes of the template frame, applied about each
                joint's bind position (see module docstring); None = bind pose.
        Returns:
            verts (V, 3) and the 21 label joints (FreiHAND order, :attr:`joints21` moved by their carriers),
            float64 metres, template frame.
        """
        A = self.transforms(rotations)
        S = A @ self.bind_world @ self.inverse_bind  # (25, 4, 4) skinning matrices
        M = np.einsum("vj,jab->vab", self.weights, S[:, :3, :])  # (V, 3, 4)
        verts = np.einsum("vab,vb->va", M[:, :, :3], self.verts) + M[:, :, 3]
        c = self.label_carriers
        joints = np.einsum("jab,jb->ja", A[c, :3, :3], self.joints21) + A[c, :3, 3]
        return verts, joints
