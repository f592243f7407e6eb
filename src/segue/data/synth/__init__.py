"""The synthetic music world: a documented generative model of a catalog, users and listening.

``generate_world(SynthParams(...))`` returns a :class:`World` whose events stream in chunks;
``UserSimulator`` answers "would this user play / click this?" with the same model's known
probabilities. The model, every parameter and the statistics to expect are described in
``docs/synthetic-world.md``.
"""

from segue.data.synth.params import SynthParamError, SynthParams
from segue.data.synth.simulator import Context, Response, UserSimulator
from segue.data.synth.world import World, WorldTruth, generate_world

__all__ = [
    "Context",
    "Response",
    "SynthParamError",
    "SynthParams",
    "UserSimulator",
    "World",
    "WorldTruth",
    "generate_world",
]
