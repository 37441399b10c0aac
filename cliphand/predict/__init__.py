"""``cliphand predict``: run a trained CLIP-Hand3D model on one's own images, a folder of images or a video.

Modules: :mod:`~cliphand.predict.camera` (intrinsics, hand squares, root depth),
:mod:`~cliphand.predict.prediction` (one image -> :class:`~cliphand.predict.prediction.Prediction`),
:mod:`~cliphand.predict.outputs` (the files written per image), :mod:`~cliphand.predict.inputs` (images, folders,
videos) and :mod:`~cliphand.predict.run` (the command: :func:`~cliphand.predict.run.run_predict`).

Conventions (those of :mod:`cliphand.hand.geometry`): camera frame x right, y down, z forward (metres);
pinhole intrinsics ``K`` in pixels; continuous pixel coordinates (pixel i spans [i, i+1)); the 21 joints in
FreiHAND order (:data:`cliphand.hand.skeleton.JOINT_NAMES`), joint 0 (the wrist) is the root.

Per image:

1. **Intrinsics** ``K`` of the full image: given (``--focal F`` [``--principal cx,cy``] or ``--intrinsics
   K.json``), else the default ``fx = fy = max(W, H)``, principal point ``(W / 2, H / 2)`` (a ~53 degree
   field of view over the longer side; recorded as ``"intrinsics_source": "default"``).
2. **Hand square** ``(x0, y0, side)`` pixels, in this order: the user's tight box ``x0, y0, w, h`` made square
   (side = ``pad`` x max(w, h), same centre); else MediaPipe Hands' landmarks (side = ``pad`` x the longer
   side of their 2D bounding box, centred on it: the training crop rule of
   :func:`cliphand.data.preprocess.crop_to_input`, ``pad`` = 1.3); else the whole image (a square of the
   longer side centred on the image, no pad, zeros outside). When MediaPipe finds no hand, the whole image is
   used and ``"hand_source": "whole_image (no detection)"`` is recorded.
3. **Handedness**: ``left`` | ``right`` | ``auto`` (MediaPipe's label when it found the hand, read with the
   ordinary-photo convention unless ``selfie``: MediaPipe's labels assume a mirrored selfie image; otherwise
   right). The model was trained on right hands, so a left hand's crop is flipped horizontally (and the crop
   intrinsics mirrored, ``cx' = S - cx``, :func:`cliphand.data.readers.sources.mirror_labels`), predicted, and the
   outputs mirrored back (x negated in the camera frame), so every output is in the original image's frame;
   the mesh faces of a mirrored mesh get reversed winding so that their normals still point outwards.
4. **Root depth**: the model predicts uvd relative to the root (``d = (z - z_root) / depth_range + 0.5``), not
   the absolute depth. :func:`cliphand.predict.camera.solve_root_depth` picks ``z_root`` so that the lifted
   wrist -> middle-MCP bone (joints 0 and 9) has a reference length, by default
   :data:`cliphand.predict.camera.BONE_LENGTH_M` = 0.095 m. This is an assumption
   (an adult hand, wrist to middle-finger MCP is about 7-11 cm; the synthetic template hand of this pipeline
   has 0.092 m; Ge et al.'s real-world labels, which fix the middle finger's first bone at 5 cm, have a median
   of 0.081 m), so it is a parameter. Absolute positions (and the hand's size) follow it and the focal length;
   a wrong focal length or bone length moves and scales the hand but the 2D projections stay the model's.
5. **Outputs** in ``out_dir``: ``<stem>.json`` (:meth:`cliphand.predict.prediction.Prediction.to_json`),
   ``<stem>.obj`` (or ``.ply``), the mesh in the camera frame in metres (y down, as everything here: viewers
   with y up show it upside down), and ``<stem>_overlay.png`` (the image, the shaded mesh projected
   semi-transparently, the 2D skeleton coloured per finger, the hand square). Every file is written atomically
   (temp file, then rename); the JSON is written last. For a video ``<out_dir>/<video stem>/frame_NNNNNN.*``
   with N the frame index in the video.

Inputs: an image file (:data:`cliphand.predict.inputs.IMAGE_SUFFIXES`, EXIF orientation applied), a folder (its
images, sorted by name, not recursive) or a video (:data:`cliphand.predict.inputs.VIDEO_SUFFIXES`, read with
PyAV, ``pip install av`` or ``pip install '.[video]'``). MediaPipe (``pip install '.[peers]'``) and PyAV are
optional: without MediaPipe the hand square comes from ``box`` or the whole image.

Errors: a single image or video that cannot be read raises :class:`~cliphand.errors.DataError` naming the file
(nothing is written for it). In a folder a bad file is skipped with a warning naming it and listed in the
summary's ``failed``; the other images are still predicted (the CLI then exits with code 1).
"""
