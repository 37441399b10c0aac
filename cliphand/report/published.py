"""Published figures quoted by the report (NOTES §5 and §6): the CLIP-Hand3D paper's ablation tables and
the FreiHAND results of other methods. Everything else in the report comes from pipeline files; these are
labelled as the papers' wherever they appear."""

from __future__ import annotations

PAPER = "paper (FreiHAND, ResNet-50)"  # label of every column and table quoting the CLIP-Hand3D paper
PAPER_TABLE3 = {8: 7.07, 16: 7.01, 32: 6.88}   # Table 3: batch size B -> PA-PJPE mm (FreiHAND validation)
PAPER_TABLE4 = {10: 7.16, 15: 6.94, 21: 6.88}  # Table 4: N joints per prompt -> PA-PJPE mm
# Table 5 (modules): AUC(0-30 mm), PJPE mm, median mm, PA-PJPE mm; rows absent here are not in our notes.
PAPER_TABLE5 = {"full model": (0.776, 13.95, 11.58, 6.88), "w/o CLIP loss": (0.763, 14.86, 12.27, 7.29)}
# NOTES §6: FreiHAND test, PA-MPJPE mm, PA-MPVPE mm, F@5, F@15 (single view unless noted).
PEERS_FREIHAND = [
    ("CLIP-Hand3D", "ResNet-50", 6.6, 6.7, 0.728, 0.981, ""),
    ("HandAR", "ResNet-50", 6.7, 6.7, 0.724, 0.981, ""),
    ("I2L-MeshNet", "ResNet-50", 7.4, 7.6, 0.681, 0.973, ""),
    ("MobRecon", "ResNet-50", 5.7, 5.8, 0.784, 0.986, ""),
    ("MeshGraphormer", "HRNet-W64", 5.9, 6.0, 0.764, 0.986, "95-view test-time augmentation"),
    ("SimpleHand", "FastViT", 5.7, 6.0, 0.772, 0.986, ""),
    ("HaMeR", "ViT-H", 6.0, 5.7, 0.785, 0.990, ""),
    ("WiLoR", "—", 5.5, 5.1, 0.825, 0.993, ""),
]
