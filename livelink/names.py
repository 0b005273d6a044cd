"""ARKit blendshape names in Live Link Face packet order, index constants and regions.

Index constants (``JAW_OPEN`` ...) let callers address channels without string lookups;
``REGIONS`` groups them so the animation layer can scale a whole region at once.
"""

from __future__ import annotations

BLENDSHAPE_NAMES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft",
    "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight",
    "JawForward", "JawLeft", "JawRight", "JawOpen",
    "MouthClose", "MouthFunnel", "MouthPucker", "MouthLeft", "MouthRight",
    "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight",
    "MouthUpperUpLeft", "MouthUpperUpRight",
    "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
    "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight",
    "TongueOut",
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip

N_VALUES = len(BLENDSHAPE_NAMES)  # 61
N_BLENDSHAPES = 52  # 0..51 are weights in [0, 1]; 52..60 are rotations / 180°

INDEX: dict[str, int] = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}

EYE_BLINK_LEFT = 0
EYE_LOOK_DOWN_LEFT = 1
EYE_LOOK_IN_LEFT = 2
EYE_LOOK_OUT_LEFT = 3
EYE_LOOK_UP_LEFT = 4
EYE_SQUINT_LEFT = 5
EYE_WIDE_LEFT = 6
EYE_BLINK_RIGHT = 7
EYE_LOOK_DOWN_RIGHT = 8
EYE_LOOK_IN_RIGHT = 9
EYE_LOOK_OUT_RIGHT = 10
EYE_LOOK_UP_RIGHT = 11
EYE_SQUINT_RIGHT = 12
EYE_WIDE_RIGHT = 13
JAW_FORWARD = 14
JAW_LEFT = 15
JAW_RIGHT = 16
JAW_OPEN = 17
MOUTH_CLOSE = 18
MOUTH_FUNNEL = 19
MOUTH_PUCKER = 20
MOUTH_LEFT = 21
MOUTH_RIGHT = 22
MOUTH_SMILE_LEFT = 23
MOUTH_SMILE_RIGHT = 24
MOUTH_FROWN_LEFT = 25
MOUTH_FROWN_RIGHT = 26
MOUTH_DIMPLE_LEFT = 27
MOUTH_DIMPLE_RIGHT = 28
MOUTH_STRETCH_LEFT = 29
MOUTH_STRETCH_RIGHT = 30
MOUTH_ROLL_LOWER = 31
MOUTH_ROLL_UPPER = 32
MOUTH_SHRUG_LOWER = 33
MOUTH_SHRUG_UPPER = 34
MOUTH_PRESS_LEFT = 35
MOUTH_PRESS_RIGHT = 36
MOUTH_LOWER_DOWN_LEFT = 37
MOUTH_LOWER_DOWN_RIGHT = 38
MOUTH_UPPER_UP_LEFT = 39
MOUTH_UPPER_UP_RIGHT = 40
BROW_DOWN_LEFT = 41
BROW_DOWN_RIGHT = 42
BROW_INNER_UP = 43
BROW_OUTER_UP_LEFT = 44
BROW_OUTER_UP_RIGHT = 45
CHEEK_PUFF = 46
CHEEK_SQUINT_LEFT = 47
CHEEK_SQUINT_RIGHT = 48
NOSE_SNEER_LEFT = 49
NOSE_SNEER_RIGHT = 50
TONGUE_OUT = 51
HEAD_YAW = 52
HEAD_PITCH = 53
HEAD_ROLL = 54
LEFT_EYE_YAW = 55
LEFT_EYE_PITCH = 56
LEFT_EYE_ROLL = 57
RIGHT_EYE_YAW = 58
RIGHT_EYE_PITCH = 59
RIGHT_EYE_ROLL = 60

REGIONS: dict[str, tuple[int, ...]] = {
    "eyes": tuple(range(EYE_BLINK_LEFT, EYE_WIDE_RIGHT + 1)),
    "jaw": (JAW_FORWARD, JAW_LEFT, JAW_RIGHT, JAW_OPEN),
    "mouth": tuple(range(MOUTH_CLOSE, MOUTH_UPPER_UP_RIGHT + 1)),
    "brows": tuple(range(BROW_DOWN_LEFT, BROW_OUTER_UP_RIGHT + 1)),
    "cheeks": (
        CHEEK_PUFF,
        CHEEK_SQUINT_LEFT,
        CHEEK_SQUINT_RIGHT,
        NOSE_SNEER_LEFT,
        NOSE_SNEER_RIGHT,
    ),
    "tongue": (TONGUE_OUT,),
    "head": (HEAD_YAW, HEAD_PITCH, HEAD_ROLL),
    "eye_rotation": tuple(range(LEFT_EYE_YAW, RIGHT_EYE_ROLL + 1)),
}

# Column order of the Live Link Face app's CSV recordings: like the packet order except that
# JawRight precedes JawLeft and MouthRight precedes MouthLeft. Read by name, write in this order.
CSV_ORDER: tuple[str, ...] = (
    *BLENDSHAPE_NAMES[:JAW_LEFT],
    "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker",
    "MouthRight", "MouthLeft",
    *BLENDSHAPE_NAMES[MOUTH_SMILE_LEFT:],
)  # fmt: skip

assert N_VALUES == 61 and sorted(CSV_ORDER) == sorted(BLENDSHAPE_NAMES)
