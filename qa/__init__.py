"""Ask questions of source documents; get back their own sentences, quoted and cited.

The public API, re-exported here: build_index, load_index, live_index, retrieve,
answer, the records they return and the errors they raise.
"""

from qa.api import answer as answer
from qa.api import (
    build_index,
    current_settings,
    default_index,
    get_encoder,
    live_index,
    load_index,
    reload_settings,
    retrieve,
)
from qa.errors import (
    BadHistoryError,
    BadQuestionError,
    IndexCorruptError,
    IndexLockedError,
    IndexMissingError,
    IndexWriteError,
    ModelLoadError,
    ModelMismatchError,
    QAError,
    RebuildRunning,
    SeedsError,
    SettingsError,
    SourceNotFoundError,
    StoreMismatchError,
    StoreUnavailableError,
    UploadRefused,
)
from qa.indexing import BuildReport
from qa.reader.index import Index
from qa.reader.live import LiveIndex
from qa.records import Answer, Citation, Hit, Passage, Quote, Sentence, Turn

__all__ = [
    "Answer",
    "BadHistoryError",
    "BadQuestionError",
    "BuildReport",
    "Citation",
    "Hit",
    "Index",
    "IndexCorruptError",
    "IndexLockedError",
    "IndexMissingError",
    "IndexWriteError",
    "LiveIndex",
    "ModelLoadError",
    "ModelMismatchError",
    "Passage",
    "QAError",
    "Quote",
    "RebuildRunning",
    "SeedsError",
    "Sentence",
    "SettingsError",
    "SourceNotFoundError",
    "StoreMismatchError",
    "StoreUnavailableError",
    "Turn",
    "UploadRefused",
    "answer",
    "build_index",
    "current_settings",
    "default_index",
    "get_encoder",
    "live_index",
    "load_index",
    "reload_settings",
    "retrieve",
]
