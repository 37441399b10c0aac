"""``synth``: the synthetic-data generator's settings (:class:`SynthSettings`), every one with its default.

Read as fields by :mod:`cliphand.data.synth` (the stage passes ``params.synth`` to
:func:`cliphand.data.synth.synthesize.synthesize`, which hands it to every sample). Ranges are [low, high],
drawn uniformly per sample. The gesture file and the rigged hand are paths, not settings: the stage passes them
(:class:`cliphand.paths.Paths`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from cliphand.config.types import NonNegFloat, NonNegInt, NonNegRange, PosFloat, Prob, Range, StrictModel, ordered


class SynthSettings(StrictModel):
    """``synth``: how many images the synthesize stage renders and how each is randomised
    (:func:`cliphand.data.synth.sample.render_sample`, the articulation sampler
    :meth:`cliphand.data.synth.articulation.Articulator.sample`). Units: pixels, degrees, metres as named."""

    # the stage: samples per split and worker processes
    n_train: NonNegInt = 10000
    n_val: NonNegInt = 300
    n_test: NonNegInt = 300
    workers: NonNegInt = 0                     # processes; 0 = every core
    # labels
    label_convention: Literal["ge", "webxr"] = "ge"  # "ge": label joints fitted to the Ge et al. gestures (tips on
    #   the skin of the fingertip, FreiHAND-like thumb base and wrist; needs the gesture file); "webxr": the asset's
    #   own joints (tips mid-way along the distal phalanx)
    # camera and hand
    render_size: Annotated[int, Field(ge=16)] = 160  # R: square image side, pixels
    fov_deg: Range = [20.0, 45.0]              # horizontal field of view -> focal f = (R/2) / tan(fov/2), pixels
    hand_size_frac: Range = [0.5, 0.9]         # longest side of the hand mesh's 2D box / R
    center_jitter: NonNegFloat = 0.15          # box centre offset from the image centre, +- fraction of R
    principal_jitter: NonNegFloat = 0.05       # principal point offset from the image centre, +- fraction of R
    hand_scale: Range = [0.9, 1.1]             # isotropic scale of the template hand (hand size variation)
    bone_scale_jitter: NonNegFloat = 0.0       # std of the palm's and of each finger's length factor, 0 = off
    p_upright: Prob = 0.5                      # chance of a presented-hand view (cliphand/data/synth/sample.py)
    upright_jitter_deg: NonNegFloat = 40.0     # tilt range of presented-hand views, degrees
    min_view_angle_deg: Annotated[float, Field(ge=0, lt=90)] = 30.0  # uniform views: min hand-axis to optical-axis angle
    # articulation sampler (cliphand/data/synth/articulation.py)
    grasp_beta: PosFloat = 0.6                 # grasp coefficient g ~ Beta(a, a) in [0, 1] (0 open hand, 1 fist)
    finger_noise: NonNegFloat = 0.15           # std of each finger's curl around g
    p_finger_independent: Prob = 0.3           # chance a finger ignores g (extended or random): pointing, counting
    p_gesture: Prob = 0.5                      # chance to start from one of the Ge et al. gestures (if given)
    gesture_noise_deg: NonNegFloat = 6.0       # std of the noise added to a gesture's angles
    # skin
    skin_jitter: NonNegFloat = 0.06            # per-channel jitter of the skin albedo
    skin_mottle: NonNegFloat = 0.03            # std of the per-vertex multiplicative albedo noise (mm-scale blotches)
    skin_grain: NonNegRange = [0.005, 0.025]   # std of the per-pixel multiplicative skin texture (fine grain)
    crease_darken: NonNegRange = [0.0, 0.2]    # darkening (and reddening) of concave mesh regions (creases)
    nail_tint: NonNegRange = [0.3, 0.7]        # fingernail albedo: blend weight from skin towards a light pink, 0-1
    nail_specular: NonNegRange = [0.15, 0.5]   # extra Blinn-Phong specular strength on the fingernails
    # lights (scaled together to ``exposure``)
    ambient: NonNegRange = [0.15, 0.7]         # ambient light intensity
    hemi_ambient: NonNegRange = [0.0, 0.4]     # hemispheric ambient (sky from above, ground bounce below)
    light_intensity: NonNegRange = [0.3, 1.1]  # key light intensity
    light_color_jitter: NonNegFloat = 0.15     # per-channel jitter of the light colour
    p_fill_light: Prob = 0.6                   # chance of a second (fill) directional light
    fill_intensity: NonNegRange = [0.1, 0.6]   # fill light intensity / key light intensity
    fill_color_jitter: NonNegFloat = 0.3       # per-channel jitter of the fill light colour
    exposure: NonNegRange = [0.75, 1.15]       # ambient + hemispheric + half the direct light, after normalisation
    wrap: NonNegRange = [0.2, 0.5]             # wrapped-Lambert softness (0 hard terminator, 1 very soft)
    specular: NonNegRange = [0.0, 0.25]        # Blinn-Phong specular strength (skin)
    shininess: NonNegRange = [5.0, 40.0]       # Blinn-Phong exponent
    # forearm and sleeve (cliphand/data/synth/forearm.py)
    p_forearm: Prob = 0.9                      # chance of a forearm attached at the wrist
    forearm_length: NonNegRange = [0.08, 0.25]  # how far the forearm reaches behind the wrist, metres
    forearm_bend_deg: NonNegFloat = 20.0       # max wrist flexion and deviation between hand and forearm, +- degrees
    forearm_taper: NonNegRange = [1.1, 1.4]    # forearm cross-section 20 cm behind the wrist / at the wrist
    p_sleeve: Prob = 0.6                       # chance (given a forearm) of a sleeve over the forearm
    sleeve_start: NonNegRange = [0.02, 0.12]   # distance of the sleeve's edge from the wrist, metres
    sleeve_widen: NonNegRange = [1.1, 1.35]    # sleeve cross-section / forearm cross-section
    p_sleeve_texture: Prob = 0.3               # chance of a procedural texture on the sleeve (else plain cloth)
    # background and occluders (cliphand/data/synth/backgrounds.py, appearance.py)
    p_photo_bg: Prob = 0.5                     # chance of a photograph background
    p_collage_bg: Prob = 0.3                   # chance of an indoor-clutter collage (rest: procedural)
    p_occlusion: Prob = 0.4                    # chance of one occluder over the hand
    occlusion_frac: NonNegRange = [0.05, 0.3]  # occluder area / hand box area
    # camera effects
    color_jitter: NonNegFloat = 0.15           # strength of the final brightness/contrast/saturation/gain jitter
    p_blur: Prob = 0.4                         # chance of Gaussian blur
    blur_sigma: NonNegRange = [0.3, 1.2]       # blur sigma, pixels
    noise_std: NonNegRange = [0.0, 6.0]        # Gaussian pixel noise std, 0-255 units
    p_jpeg: Prob = 0.5                         # chance of JPEG compression
    jpeg_quality: Annotated[list[Annotated[int, Field(ge=1, le=100)]], Field(min_length=2, max_length=2),
                            AfterValidator(ordered)] = [40, 95]

    @model_validator(mode="after")
    def _rules(self):
        if self.p_photo_bg + self.p_collage_bg > 1:
            raise ValueError(f"p_photo_bg + p_collage_bg = {self.p_photo_bg + self.p_collage_bg:g}: "
                             "chances of one background each, their sum must be <= 1")
        return self
