"""The 21-joint hand skeleton in FreiHAND order (wrist; thumb, index, middle, ring, little, each from the
base joint to the fingertip), its joint names, bones and the per-finger colours of every drawing (report
figures, predict overlays).

The joint names are the authors' (CLIP-Hand3D release, NOTES §5): "wrist", then "<finger> MCP",
"<finger> PIP", "<finger> DIP", "<finger> fingertip"; the text prompts (:mod:`cliphand.text.prompts`)
spell the joints with exactly these names.
"""

FINGERS = ("thumb", "index", "middle", "ring", "little")
#: the 21 joint names, index = joint id (FreiHAND order)
JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(f"{f} {p}" for f in FINGERS for p in ("MCP", "PIP", "DIP", "fingertip"))
#: (parent, child) joint ids of the 20 bones
BONES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
         (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]
FINGER_COLOURS = ["#e6194b", "#f58231", "#3cb44b", "#4363d8", "#911eb4"]  # thumb .. little
