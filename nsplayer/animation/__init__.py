"""Animation layer: idle motion, speech blending, per-region gains, emotion overlay, clamping."""

from nsplayer.animation.compose import Animator, Gains
from nsplayer.animation.emotion import parse_emotion
from nsplayer.animation.idle import IdleGenerator, IdleSettings

__all__ = ["Animator", "Gains", "IdleGenerator", "IdleSettings", "parse_emotion"]
