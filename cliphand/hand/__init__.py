"""The hand itself: the 21-joint skeleton (names, bones), camera geometry (uvd, projection) and MANO."""
