"""text8: next-character prediction over 27 symbols (a-z and space), in bits per character.

Corpus. With ``path``, the real text8 file (the first 10^8 bytes of a cleaned
English Wikipedia dump: only the bytes ``a``-``z`` and space). It is read in
chunks of 1 MiB into a preallocated array of symbol ids, never as one Python
string, and validated on the way: the first byte that is not ``a``-``z`` or
space is an error naming it and its byte offset (a trailing newline counts).
``max_chars`` keeps only the first characters (for quick runs).

Without ``path`` [ours]: an embedded default corpus built from text that
ships with every CPython, the documentation strings of
``pydoc_data.topics``: the texts joined by single spaces in sorted-key
order, lower-cased, every character outside ``a``-``z`` mapped to a space,
and runs of spaces collapsed to one. That is about 376 thousand characters
on CPython 3.11 (the exact text, hence every number measured on it, depends
on the Python version; ``describe()`` reports the length).

Splits: the corpus is cut, in order, into contiguous training, validation and
test parts of fractions ``split`` (default 0.9, 0.05, 0.05).

Training batches (truncated BPTT). The training part is cut into
``batch_size`` streams of equal length ``L`` starting at evenly spaced
offsets ``j L``. Step ``s`` takes window ``i = s mod n`` of every stream, where
``n = (L - 1) // window`` windows fit in a stream: inputs are the characters
``[j L + i w, j L + i w + w)`` and targets the characters one further on.
After the last window a stream wraps around to its start. ``Batch.carry`` is
true except on the first window of each pass, so the loop starts each window
from the state the previous one ended in (no gradient crosses the boundary),
and restarts from the learned initial state when the streams wrap. A batch is
a pure function of ``step``; the generator is not used.

Evaluation. ``bpc``, on the validation part (``test_bpc``: the test part),
limited to its first ``eval_chars`` characters (None: all of it): the text is
cut into ``batch_size`` contiguous streams (fewer if the text is short), each
read from the learned initial state in consecutive windows of ``window``
characters with the state carried across windows, and every character after
each stream's first is predicted once. Bits per character = mean
cross-entropy in nats / ln 2. ``unigram_bpc``: the entropy, in bits, of the
training part's character frequencies: what a model that ignores context
achieves, the baseline to beat.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy

from rnncap.autodiff.losses import SoftmaxCrossEntropy
from rnncap.backend import TRAIN_DTYPE
from rnncap.errors import RnncapError
from rnncap.resources import Footprint
from rnncap.tasks.base import Batch, Task

ALPHABET = "abcdefghijklmnopqrstuvwxyz "   # symbol ids 0-25 letters, 26 space
N_SYMBOLS = len(ALPHABET)
CHUNK_BYTES = 1 << 20                      # read the corpus 1 MiB at a time
_INVALID = 255                             # marks a byte outside the alphabet


def _byte_to_id() -> numpy.ndarray:
    table = numpy.full(256, _INVALID, dtype=numpy.uint8)                      # (256,)
    for i, ch in enumerate(ALPHABET):
        table[ord(ch)] = i
    return table


BYTE_TO_ID = _byte_to_id()


def decode(ids) -> str:
    """The text that a sequence of symbol ids spells."""
    return "".join(ALPHABET[int(i)] for i in ids)


def encode(text: str) -> numpy.ndarray:
    """Symbol ids of a string over the alphabet; any other character is an error."""
    ids = BYTE_TO_ID[numpy.frombuffer(text.encode("latin-1", errors="replace"), dtype=numpy.uint8)]  # (n,)
    if (ids == _INVALID).any():
        raise RnncapError("text8: the text holds characters outside a-z and space")
    return ids


def load_text8(path, max_chars: int | None = None) -> numpy.ndarray:
    """The symbol ids of a text8 file, read and validated 1 MiB at a time."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RnncapError(f"text8 corpus {path!r} is not a file: download text8.zip from "
                          "http://mattmahoney.net/dc/text8.zip and unzip it, or omit the path "
                          "to use the embedded corpus")
    size = os.path.getsize(path)
    n = size if max_chars is None else min(size, max_chars)
    if n == 0:
        raise RnncapError(f"text8 corpus {path!r} is empty")
    ids = numpy.empty(n, dtype=numpy.uint8)                                   # (n,)
    with open(path, "rb") as f:
        offset = 0
        while offset < n:
            got = f.readinto(memoryview(ids)[offset:min(offset + CHUNK_BYTES, n)])
            if not got:
                raise RnncapError(f"text8 corpus {path!r} ended after {offset} bytes while it was being read")
            raw = ids[offset:offset + got]                                    # (got,) bytes as read
            mapped = BYTE_TO_ID[raw]                                          # (got,) symbol ids
            bad = numpy.flatnonzero(mapped == _INVALID)
            if bad.size:
                byte = bytes([int(raw[bad[0]])])
                raise RnncapError(f"text8 corpus {path!r}: character {repr(byte)[1:]} at byte offset "
                                  f"{offset + int(bad[0])} is not a-z or space; give the unzipped text8 file, "
                                  "which holds only those")
            raw[...] = mapped                                                 # bytes -> ids, in place
            offset += got
    return ids


@lru_cache(maxsize=1)
def embedded_corpus() -> numpy.ndarray:
    """Symbol ids of the default corpus built from ``pydoc_data.topics`` (see the module docstring)."""
    from pydoc_data.topics import topics

    text = " ".join(topics[key] for key in sorted(topics)).lower()
    text = re.sub("[^a-z]+", " ", text)        # outside a-z -> space, and runs of spaces -> one
    ids = encode(text)
    ids.flags.writeable = False                # shared by every task built in this process
    return ids


@dataclass(frozen=True)
class Text8Config:
    path: str | None = None                    # the text8 file; None: the embedded corpus
    window: int = 50                           # truncated-BPTT length
    batch_size: int = 32                       # parallel streams
    eval_chars: int | None = 200_000           # evaluate on at most this many characters; None: the whole split
    split: tuple = (0.9, 0.05, 0.05)           # train, validation, test fractions
    max_chars: int | None = None               # use only the corpus's first characters
    seed: int = 0                              # unused: corpus, split and batches are deterministic

    def __post_init__(self):
        object.__setattr__(self, "split", tuple(float(f) for f in self.split))   # JSON gives a list
        for name in ("window", "batch_size"):
            if getattr(self, name) < 1:
                raise RnncapError(f"text8 task: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_chars", "max_chars"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise RnncapError(f"text8 task: {name} must be >= 2 (or None), got {value}")
        if (len(self.split) != 3 or not all(0 < f < 1 for f in self.split)
                or sum(self.split) > 1 + 1e-9):
            raise RnncapError(f"text8 task: split must be three fractions in (0, 1) for train, validation and "
                              f"test, summing to at most 1; got {self.split}")

    def footprint(self) -> Footprint:
        """The corpus is held as one byte a character; a missing file is the task's own error, later."""
        if self.path is None:
            chars = embedded_corpus().size
        else:
            chars = os.path.getsize(self.path) if os.path.isfile(self.path) else 0
        if self.max_chars is not None:
            chars = min(chars, self.max_chars)
        return Footprint(steps=self.window, batch=self.batch_size, evaluated=self.batch_size, held=0,
                         n_in=N_SYMBOLS, n_out=N_SYMBOLS, extra_bytes=chars)


class Text8Task(Task):
    name = "text8"
    objective = "bpc"
    direction = "min"

    def __init__(self, config: Text8Config = Text8Config(), xp=numpy, dtype=TRAIN_DTYPE):
        super().__init__(xp, dtype)
        self.config = config
        self.n_in = self.n_out = N_SYMBOLS
        self.loss = SoftmaxCrossEntropy()
        corpus = embedded_corpus() if config.path is None else load_text8(config.path, config.max_chars)
        if config.path is None and config.max_chars is not None:
            corpus = corpus[:config.max_chars]
        self.corpus = corpus                                                  # (n,) symbol ids
        n = corpus.size
        n_train, n_valid, n_test = (int(f * n) for f in config.split)
        self.train_ids = corpus[:n_train]
        self.valid_ids = corpus[n_train:n_train + n_valid]
        self.test_ids = corpus[n_train + n_valid:n_train + n_valid + n_test]
        self.stream_length = n_train // config.batch_size                     # L
        self.windows_per_pass = (self.stream_length - 1) // config.window     # n
        if self.windows_per_pass < 1:
            raise RnncapError(
                f"text8 task: the training split ({n_train} characters) is too short for {config.batch_size} "
                f"streams of at least one window of {config.window} (+1) characters; use a smaller batch "
                "size or window, or more text")
        for part, ids in (("validation", self.valid_ids), ("test", self.test_ids)):
            if ids.size < 2:
                raise RnncapError(f"text8 task: the {part} split has {ids.size} characters; it needs at least 2")
        self.eye = numpy.eye(N_SYMBOLS, dtype=self.dtype)                     # (27, 27) one-hot rows
        self.unigram_bpc = unigram_entropy_bits(self.train_ids)

    def window_ids(self, step: int) -> numpy.ndarray:
        """The characters of step ``step``'s window in every stream, (window + 1, B): inputs and targets."""
        w, B = self.config.window, self.config.batch_size
        i = step % self.windows_per_pass
        starts = numpy.arange(B) * self.stream_length + i * w                 # (B,)
        return self.train_ids[starts[None, :] + numpy.arange(w + 1)[:, None]]  # (w + 1, B)

    def _batch_of(self, ids: numpy.ndarray, carry: bool) -> Batch:
        """Inputs ``ids[:-1]`` one-hot, targets ``ids[1:]``: ``ids`` (T + 1, B)."""
        x = self.eye[ids[:-1]]                                                # (T, B, 27)
        target = ids[1:].astype(numpy.int64)                                  # (T, B)
        mask = numpy.ones(target.shape)                                       # (T, B)
        return Batch(self.to_device(x), self.xp.asarray(target), self.to_device(mask), carry)

    def batch(self, step: int, rng: numpy.random.Generator | None = None) -> Batch:
        return self._batch_of(self.window_ids(step), carry=step % self.windows_per_pass != 0)

    def bpc(self, net, split: str = "validation") -> float:
        """Bits per character of ``net`` on the validation or test split (see the module docstring)."""
        ids = {"validation": self.valid_ids, "test": self.test_ids}[split]
        if self.config.eval_chars is not None:
            ids = ids[:self.config.eval_chars]
        streams = min(self.config.batch_size, ids.size - 1)
        m = (ids.size - 1) // streams                                         # predictions per stream
        # stream j reads characters [j m, j m + m] and predicts the last m of them
        text = ids[numpy.arange(streams)[None, :] * m + numpy.arange(m + 1)[:, None]]  # (m + 1, S)
        state, nats = None, 0.0
        for start in range(0, m, self.config.window):
            piece = self._batch_of(text[start:start + self.config.window + 1], carry=state is not None)
            fwd = net.forward(piece.x, state)
            state = fwd.state
            value, _ = self.loss(fwd.out, piece.target, piece.mask)           # mean over the piece
            nats += float(value) * piece.target.size
        return nats / (m * streams) / math.log(2.0)

    def evaluate(self, net) -> dict:
        return {"bpc": self.bpc(net, "validation"), "test_bpc": self.bpc(net, "test"),
                "unigram_bpc": self.unigram_bpc}

    def describe(self) -> dict:
        c = self.config
        return {"task": self.name, "n_in": N_SYMBOLS, "n_out": N_SYMBOLS, "T": c.window, "batch": c.batch_size,
                "corpus": c.path or "embedded (pydoc_data.topics)", "chars": int(self.corpus.size),
                "split": list(c.split), "eval_chars": c.eval_chars,
                "loss": "softmax over 27 characters at every step (truncated BPTT, state carried)",
                "metric": "bits per character on the validation split"}


def unigram_entropy_bits(ids: numpy.ndarray) -> float:
    """Entropy in bits of the symbol frequencies of ``ids``."""
    p = numpy.bincount(ids, minlength=N_SYMBOLS) / ids.size                   # (27,)
    p = p[p > 0]
    return float(-(p * numpy.log2(p)).sum())
