"""The action catalogue: what a message can ask a user to do, what it is worth, where it links.

An action for a user is a type, an item and a reason. The business value is what a click on it
is worth relative to playing a track (1.0); the decision logic multiplies it by the predicted
click probability. Deep links use the app's ``segue://`` scheme so that push, e-mail and in-app
cards open the same screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from segue.data.model import ItemKind
from segue.errors import SegueError


class ActionType(StrEnum):
    """Also the ``source`` of every impression/open/click/conversion event of a message."""

    PLAY_TRACK = "play_track"
    PLAY_ALBUM = "play_album"
    FOLLOW_ARTIST = "follow_artist"
    PODCAST_EPISODE = "podcast_episode"
    WATCH_VIDEO = "watch_video"
    START_AUDIOBOOK = "start_audiobook"
    TRY_FEATURE = "try_feature"


#: Positions used by feature matrices (stable: saved models depend on it).
ACTION_TYPES: tuple[ActionType, ...] = tuple(ActionType)


@dataclass(frozen=True)
class ActionSpec:
    kind: ItemKind
    value: float
    verb: str
    link: str  # deep link pattern with {id}


CATALOGUE: dict[ActionType, ActionSpec] = {
    ActionType.PLAY_TRACK: ActionSpec(ItemKind.TRACK, 1.0, "Play", "segue://track/{id}"),
    ActionType.PLAY_ALBUM: ActionSpec(ItemKind.ALBUM, 1.5, "Play the album", "segue://album/{id}"),
    ActionType.FOLLOW_ARTIST: ActionSpec(ItemKind.ARTIST, 2.0, "Follow", "segue://artist/{id}"),
    ActionType.PODCAST_EPISODE: ActionSpec(
        ItemKind.PODCAST_EPISODE, 1.5, "Listen to", "segue://episode/{id}"
    ),
    ActionType.WATCH_VIDEO: ActionSpec(ItemKind.VIDEO, 1.2, "Watch", "segue://video/{id}"),
    ActionType.START_AUDIOBOOK: ActionSpec(
        ItemKind.AUDIOBOOK, 3.0, "Start", "segue://audiobook/{id}"
    ),
    ActionType.TRY_FEATURE: ActionSpec(ItemKind.FEATURE, 2.5, "Try", "segue://feature/{id}"),
}
ACTION_OF_KIND: dict[ItemKind, ActionType] = {spec.kind: t for t, spec in CATALOGUE.items()}
#: App features that education actions teach to users who never used them.
EDUCATION_FEATURES: tuple[str, ...] = (
    "feat-discovery-station",
    "feat-create-playlist",
    "feat-focus-mode",
)


class Reason(StrEnum):
    LIKED_BY_SIMILAR = "liked_by_similar"  # collaborative filtering
    ARTIST_YOU_PLAY = "artist_you_play"  # album / follow derived from a CF pick's artist
    NEVER_TRIED = "never_tried"  # feature education
    # for listeners without personalisation consent: nothing about them chose these
    POPULAR = "popular"  # the item with the best click-through of its action type
    APP_FEATURE = "app_feature"  # an app feature, whether they used it or not


REASON_TEXT: dict[Reason, str] = {
    Reason.LIKED_BY_SIMILAR: "Listeners with your taste love it",
    Reason.ARTIST_YOU_PLAY: "From an artist you play",
    Reason.NEVER_TRIED: "You haven't tried it yet",
    Reason.POPULAR: "Popular on segue",
    Reason.APP_FEATURE: "A feature worth a try",
}


class Action(BaseModel):
    """One suggestion for one user, JSON-ready for the API and the outbox."""

    model_config = ConfigDict(frozen=True)

    type: ActionType
    item_id: str
    title: str
    reason: Reason
    deep_link: str
    value: float


def make_action(kind: ItemKind | str, item_id: str, title: str, reason: Reason) -> Action:
    """The action that promotes an item of ``kind``; SegueError for kinds never promoted."""
    try:
        action_type = ACTION_OF_KIND[ItemKind(kind)]
    except (KeyError, ValueError):
        raise SegueError(f"items of kind {kind!r} cannot be promoted by a message") from None
    spec = CATALOGUE[action_type]
    return Action(
        type=action_type,
        item_id=item_id,
        title=title,
        reason=reason,
        deep_link=spec.link.format(id=item_id),
        value=spec.value,
    )
