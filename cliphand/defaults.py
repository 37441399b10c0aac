"""The names settings may take (the backbones, the data splits, the ablation switches) and the defaults of
the synthetic-data generator's settings (``params.yaml`` ``synth:``, checked by :mod:`cliphand.config` against
them); every other group's defaults are its fields' in :mod:`cliphand.config`.
"""

from __future__ import annotations

#: every backbone the visual encoder can build (cliphand/model/backbone.py, efficientnet_lite.py)
BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet18", "resnet34", "resnet50")

#: the splits of the training source (``data.train``) and the external benchmarks (cliphand/data/splits.py)
TRAIN_SPLITS = ("train", "val", "test")
EXTERNAL = ("realworld", "rhd_eval", "stb_eval")

#: the model switches of the ablation rows (paper Table 5): each module on (default) or off
MODEL_SWITCHES = ("use_clip", "use_projection", "use_sparse_to_dense")

#: the articulation sampler's settings (:class:`cliphand.data.synth.articulation.Articulator`)
SAMPLER_DEFAULTS = {
    "grasp_beta": 0.6,          # grasp coefficient g ~ Beta(a, a) in [0, 1] (0 open hand, 1 fist)
    "finger_noise": 0.15,       # std of each finger's curl around g
    "p_finger_independent": 0.3,  # chance a finger ignores g (extended or random): pointing, counting
    "p_gesture": 0.5,           # chance to start from one of the Ge et al. gestures (if loaded)
    "gesture_noise_deg": 6.0,   # std of the noise added to a gesture's angles
}

#: All settings of the synthesize stage (``params.yaml`` ``synth:``), with their defaults. Ranges are
#: [low, high] drawn uniformly.
SYNTH_DEFAULTS = {
    "render_size": 160,             # R: square image side, pixels
    "fov_deg": [20.0, 45.0],        # horizontal field of view -> focal f = (R/2) / tan(fov/2), pixels
    "hand_size_frac": [0.5, 0.9],   # longest side of the hand mesh's 2D box / R
    "center_jitter": 0.15,          # box centre offset from the image centre, +- fraction of R
    "principal_jitter": 0.05,       # principal point offset from the image centre, +- fraction of R
    "hand_scale": [0.9, 1.1],       # isotropic scale of the template hand (hand size variation)
    "bone_scale_jitter": 0.0,       # std of the palm's and of each finger's length factor (hand shape), 0 = off
    "p_upright": 0.5,               # chance of a presented-hand view (module docstring)
    "upright_jitter_deg": 40.0,     # tilt range of presented-hand views, degrees
    "min_view_angle_deg": 30.0,     # uniform views: min angle between hand axis and optical axis
    "skin_jitter": 0.06,            # per-channel jitter of the skin albedo
    "skin_mottle": 0.03,            # std of the per-vertex multiplicative albedo noise (mm-scale blotches)
    "skin_grain": [0.005, 0.025],   # std of the per-pixel multiplicative skin texture (fine grain), fraction
    "crease_darken": [0.0, 0.2],    # darkening (and reddening) of concave mesh regions (creases), fraction
    "nail_tint": [0.3, 0.7],        # fingernail albedo: blend weight from skin towards a light pink, 0-1
    "nail_specular": [0.15, 0.5],   # extra Blinn-Phong specular strength on the fingernails
    "ambient": [0.15, 0.7],         # ambient light intensity (before the exposure normalisation)
    "hemi_ambient": [0.0, 0.4],     # hemispheric ambient intensity (sky from above, ground bounce below)
    "light_intensity": [0.3, 1.1],  # key light intensity (before the exposure normalisation)
    "light_color_jitter": 0.15,     # per-channel jitter of the light colour
    "p_fill_light": 0.6,            # chance of a second (fill) directional light
    "fill_intensity": [0.1, 0.6],   # fill light intensity / key light intensity
    "fill_color_jitter": 0.3,       # per-channel jitter of the fill light colour
    "exposure": [0.75, 1.15],       # ambient + hemispheric + half the direct light, after normalisation
    "wrap": [0.2, 0.5],             # wrapped-Lambert softness (0 hard terminator, 1 very soft)
    "specular": [0.0, 0.25],        # Blinn-Phong specular strength (skin)
    "shininess": [5.0, 40.0],       # Blinn-Phong exponent
    "p_forearm": 0.9,               # chance of a forearm attached at the wrist (cliphand.data.synth.forearm)
    "forearm_length": [0.08, 0.25], # how far the forearm reaches behind the wrist, metres
    "forearm_bend_deg": 20.0,       # max wrist flexion and deviation between hand and forearm, +- degrees
    "forearm_taper": [1.1, 1.4],    # forearm cross-section 20 cm behind the wrist / at the wrist
    "p_sleeve": 0.6,                # chance (given a forearm) of a sleeve over the forearm
    "sleeve_start": [0.02, 0.12],   # distance of the sleeve's edge from the wrist, metres
    "sleeve_widen": [1.1, 1.35],    # sleeve cross-section / forearm cross-section
    "p_sleeve_texture": 0.3,        # chance of a procedural texture on the sleeve (else plain cloth)
    "p_photo_bg": 0.5,              # chance of a photograph background
    "p_collage_bg": 0.3,            # chance of an indoor-clutter collage background (rest: procedural)
    "p_occlusion": 0.4,             # chance of one occluder over the hand
    "occlusion_frac": [0.05, 0.3],  # occluder area / hand box area
    "color_jitter": 0.15,           # strength of the final brightness/contrast/saturation/gain jitter
    "p_blur": 0.4,                  # chance of Gaussian blur
    "blur_sigma": [0.3, 1.2],       # blur sigma, pixels
    "noise_std": [0.0, 6.0],        # Gaussian pixel noise std, 0-255 units
    "p_jpeg": 0.5,                  # chance of JPEG compression
    "jpeg_quality": [40, 95],       # JPEG quality range
    "gestures_path": "../shared/data/ge_synthetic_gestures/handGestures.txt",  # None: no gesture prior
    "label_convention": "ge",       # "ge": label joints calibrated to the Ge et al. gestures (tips on the skin of
                                    # the fingertip, FreiHAND-like thumb base and wrist; needs gestures_path);
                                    # "webxr": the asset's own joints (tips mid-way along the distal phalanx)
    **SAMPLER_DEFAULTS,             # articulation sampler (:data:`SAMPLER_DEFAULTS`)
}

#: keys of the params.yaml ``synth:`` section that are arguments of
#: :func:`cliphand.data.synth.synthesize.synthesize`, not render settings
SYNTH_STAGE_KEYS = ("n_train", "n_val", "n_test", "workers", "seed")
