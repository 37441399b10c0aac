"""The 21-joint hand skeleton in FreiHAND order (wrist; thumb, index, middle, ring, little, each from the
base joint to the tip), its bones and the per-finger colours of every drawing (report figures, predict
overlays)."""

JOINT_NAMES = ["wrist"] + [f"{f} {p}" for f in ("thumb", "index", "middle", "ring", "little")
                           for p in ("MCP", "PIP", "DIP", "tip")]
BONES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
         (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]
FINGER_COLOURS = ["#e6194b", "#f58231", "#3cb44b", "#4363d8", "#911eb4"]  # thumb .. little
