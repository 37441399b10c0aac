"""Sparse-to-dense node levels of the template mesh for the mesh regressor (paper §3.4).

The paper (and the authors' release: 21 -> 98 -> 195 -> 389 -> 778 nodes on MANO) down-samples the
template by quadric edge-collapse decimation. Documented deviation: we pick the intermediate levels by
farthest point sampling (FPS) of the template vertices, seeded with the 21 joints, so that the levels
are nested (each level contains the previous levels' vertices) and deterministic. The first level is the
21 joints themselves, the last all V vertices in their original order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def farthest_points(points: np.ndarray, k: int, seeds: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``k`` points chosen greedily, each farthest from those chosen before (and from ``seeds``).

    Args:
        points: (V, 3). k: number to pick, 1 <= k <= V. seeds: (M, 3) positions counted as already chosen
            (not returned), or None (then the first pick is the point farthest from the centroid).
    Returns:
        (k,) int64 indices into ``points``, in the order picked (so any prefix is itself an FPS set).
    Ties go to the lowest index, so the result is deterministic.
    """
    points = np.asarray(points, np.float64)
    if not 1 <= k <= len(points):
        raise ValueError(f"cannot pick {k} of {len(points)} points")
    ref = points.mean(0, keepdims=True) if seeds is None or len(seeds) == 0 else np.asarray(seeds, np.float64)
    dist = np.linalg.norm(points[:, None] - ref[None], axis=-1).min(1)
    out = np.empty(k, np.int64)
    for i in range(k):
        j = int(np.argmax(dist))
        out[i] = j
        dist = np.minimum(dist, np.linalg.norm(points - points[j], axis=-1))
        dist[j] = -1.0
    return out


def nearest_assignment(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Up-sampling matrix that copies each destination node's nearest source node.

    Args: src (n_s, 3), dst (n_d, 3) positions (same units).
    Returns: (n_d, n_s) float32 with one 1 per row (at the nearest source node), zeros elsewhere; used to
        initialise the learned linear up-sampling over the node axis (as in the authors' release).
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    near = np.linalg.norm(dst[:, None] - src[None], axis=-1).argmin(1)
    mat = np.zeros((len(dst), len(src)), np.float32)
    mat[np.arange(len(dst)), near] = 1.0
    return mat


@dataclass
class MeshLevels:
    """Node levels from coarse (joints) to dense (all vertices).

    positions: list of (n_l, 3) float32 node positions on the template (metres, template frame);
    indices: list of (n_l,) int64 vertex indices per level, None for level 0 (the 21 joints, which are not
        vertices); the last level is arange(V).
    """

    positions: list
    indices: list

    @property
    def sizes(self) -> list[int]:
        return [len(p) for p in self.positions]

    def upsample_inits(self) -> list[np.ndarray]:
        """Nearest-neighbour (n_{l+1}, n_l) matrices between consecutive levels (see :func:`nearest_assignment`)."""
        return [nearest_assignment(a, b) for a, b in zip(self.positions[:-1], self.positions[1:])]


def build_levels(template_verts: np.ndarray, joints: np.ndarray, sizes) -> MeshLevels:
    """Nested node levels of the template by farthest point sampling (deviation from quadric decimation).

    Args:
        template_verts: (V, 3) template vertices (metres).
        joints: (J, 3) template joints (J = 21, FreiHAND order), same frame.
        sizes: strictly increasing level sizes starting with J and ending with V, e.g. [21, 85, 170, 340, 1360]
            (the authors use 21, 98, 195, 389, 778 on MANO); [J, V] gives no intermediate level.
    Returns:
        :class:`MeshLevels`; intermediate level l holds the first sizes[l] vertices of one FPS run seeded by
        the joints, so that level l is contained in level l+1.
    Raises:
        ValueError: bad shapes or sizes.
    """
    verts, joints = np.asarray(template_verts, np.float32), np.asarray(joints, np.float32)
    if verts.ndim != 2 or verts.shape[1] != 3 or joints.ndim != 2 or joints.shape[1] != 3:
        raise ValueError(f"template_verts and joints must be (V, 3) and (J, 3), got {verts.shape}, {joints.shape}")
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or sizes[0] != len(joints) or sizes[-1] != len(verts) or any(
            b <= a for a, b in zip(sizes[:-1], sizes[1:])):
        raise ValueError(f"level sizes must increase from J={len(joints)} to V={len(verts)}, got {sizes}")
    mids = sizes[1:-1]
    order = farthest_points(verts, mids[-1], seeds=joints) if mids else np.zeros(0, np.int64)
    indices = [None] + [order[:n] for n in mids] + [np.arange(len(verts), dtype=np.int64)]
    positions = [joints] + [verts[i] for i in indices[1:]]
    return MeshLevels(positions=positions, indices=indices)
