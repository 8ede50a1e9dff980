"""The few errors the library raises; each message says what to do next."""

from __future__ import annotations


class QAError(Exception):
    """Base class for every error a user can cause and fix."""


class BadQuestionError(QAError):
    """The question is empty or has nothing to search for."""


class SourceNotFoundError(QAError):
    """A source pattern given to restrict a question matches no indexed source."""


class BadHistoryError(BadQuestionError):
    """The conversation history given with a question is not a list of earlier turns."""


class IndexMissingError(QAError):
    """No index exists where one was expected."""


class IndexCorruptError(QAError):
    """An index file is missing, unreadable or fails its checksum."""


class IndexLockedError(QAError):
    """Another build holds the index folder's lock; wait for it to finish."""


class RebuildRunning(QAError):
    """A rebuild was asked for while another one runs in this process."""


class IndexWriteError(QAError):
    """The index folder could not be written; the previous index stays live."""


class ModelMismatchError(QAError):
    """The index was built with a different embedding model than the one configured."""


class ModelLoadError(QAError):
    """The embedding model could not be found or loaded from local files."""


class SettingsError(QAError):
    """A QA_* setting has a value that cannot be used."""


class SeedsError(QAError):
    """The seeds folder is missing or holds nothing that can be indexed."""


class UploadRefused(QAError):
    """An uploaded file was not saved; the message says why and what to do."""


class VerifierError(QAError):
    """The answer verifier's model is missing, fails its checksum or cannot be loaded."""


class StoreUnavailableError(QAError):
    """The vector store's server did not answer (down, unreachable or too slow); the question can be asked again."""


class StoreMismatchError(QAError):
    """The index keeps its vectors in another store than the settings select."""
