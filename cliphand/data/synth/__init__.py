"""The synthetic training set: the rigged WebXR hand, its articulation, rendering, backgrounds and the
synthesize stage's sampling."""
