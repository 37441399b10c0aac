"""The constrained value types the settings' schema is written in (pydantic ``Annotated`` types), shared by
:mod:`cliphand.config` and its group modules (:mod:`cliphand.config.model`, :mod:`cliphand.config.synth`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Prob = Annotated[float, Field(ge=0, le=1)]
Fraction = Annotated[float, Field(gt=0, le=1)]
NJoints = Annotated[int, Field(ge=1, le=21)]
Seed = Annotated[int, Field(ge=0)]


def ordered(lohi: list) -> list:
    """A [low, high] range setting, checked: ValueError unless low <= high."""
    if lohi[0] > lohi[1]:
        raise ValueError(f"range {lohi}: low must be <= high")
    return lohi


#: a [low, high] range of floats (low <= high), drawn uniformly by the code that uses it
Range = Annotated[list[float], Field(min_length=2, max_length=2), AfterValidator(ordered)]
#: the same, with both ends >= 0
NonNegRange = Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=2, max_length=2),
                        AfterValidator(ordered)]

#: test-time rotation offsets (cliphand/evaluate/test_time.py): degrees from the upright view, at most 8 views
TestRotations = Annotated[list[Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]], Field(max_length=8)]


class ClosedModel(BaseModel):
    """A group whose keys are fixed: an unknown key (a typo) is an error, not a silently ignored setting."""

    model_config = ConfigDict(extra="forbid")


class StrictModel(ClosedModel):
    """A closed group whose values also keep their YAML type: ``use_clip: 'yes'`` or ``p_blur: true`` is an
    error, not a conversion (an int is accepted for a float)."""

    model_config = ConfigDict(strict=True)  # merged with ClosedModel's extra="forbid"
