"""Offline speech synthesis with eSpeak NG through ctypes (a data generator only).

The ``espeakng-loader`` wheel ships ``libespeak-ng.so`` and its voice data, so no
system package is needed. eSpeak NG is GPL-3.0: this module only *calls* the
shared library to generate training clips; nothing of it is linked into selfsup's
code or redistributed by it.

API used (``speak_lib.h``): ``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, path,
0)`` returns the sample rate (22,050 Hz); ``espeak_SetSynthCallback`` receives the
int16 samples; ``espeak_SetVoiceByName("en-us+f3")`` picks an accent and a voice
variant; ``espeak_SetParameter`` sets rate (words per minute), pitch (0-100) and
pitch range; ``espeak_Synth`` renders UTF-8 text. The library keeps global state,
so one :class:`Espeak` per process (:func:`get_espeak`) serialises all calls.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
POS_CHARACTER = 1
RATE, VOLUME, PITCH, RANGE = 1, 2, 3, 4

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an English accent, a voice variant, speed and pitch."""

    accent: str  # an espeak-ng language name, e.g. "en-us", "en-gb-scotland"
    variant: str  # a file of espeak-ng-data/voices/!v, e.g. "f3", "klatt2"
    rate: int  # words per minute
    pitch: int  # 0-100

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}@{self.rate}wpm/p{self.pitch}"


class Espeak:
    """The eSpeak NG shared library, initialised once for synchronous synthesis."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ImportError("selfsup-audio synthesises speech with the 'espeakng-loader' "
                              "wheel: pip install espeakng-loader") from exc
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                               ctypes.c_int]
        self.sample_rate = int(self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0))
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {self.sample_rate}) with "
                               f"data path {data.decode()!r}")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept alive: the library holds a pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self._lock = threading.Lock()

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], n: int, events: int) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0: go on synthesising

    def synth(self, text: str, voice: Voice) -> np.ndarray:
        """``text`` spoken by ``voice``: int16 samples at :attr:`sample_rate`."""
        with self._lock:
            if self.lib.espeak_SetVoiceByName(f"{voice.accent}+{voice.variant}".encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice.accent}+{voice.variant}")
            for param, value in ((RATE, voice.rate), (PITCH, voice.pitch), (RANGE, 50),
                                 (VOLUME, 100)):
                self.lib.espeak_SetParameter(param, int(value), 0)
            self._chunks = []
            data = text.encode("utf-8") + b"\0"
            err = self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8,
                                        None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth({text!r}) failed with error {err}")
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


_ENGINE: Espeak | None = None


def get_espeak() -> Espeak:
    """The process's one :class:`Espeak` (the library's state is global)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak()
    return _ENGINE


def _synthesise_here(jobs: list[dict[str, object]]) -> list[np.ndarray]:
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    engine = get_espeak()
    out = []
    for job in jobs:
        libc.srand(1)  # espeak-ng draws from rand(); a fixed seed per clip
        voice = Voice(str(job["accent"]), str(job["variant"]), int(job["rate"]),  # type: ignore[call-overload]
                      int(job["pitch"]))  # type: ignore[call-overload]
        out.append(engine.synth(str(job["text"]), voice))
    return out


def synthesise(jobs: list[dict[str, object]]) -> tuple[list[np.ndarray], int]:
    """Render ``jobs`` (dicts of text, accent, variant, rate, pitch) in a fresh process.

    eSpeak NG keeps state between utterances inside the library (its output for a
    voice depends on what that process synthesised before), so every cache is
    rendered in order in a new interpreter: the same jobs give the same samples.
    Returns the int16 clips and the synthesiser's sample rate.
    """
    import itertools
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="selfsup-espeak-") as tmp:
        src, dst = Path(tmp) / "jobs.json", Path(tmp) / "clips.npz"
        src.write_text(json.dumps(jobs), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "selfsup_audio.io.espeak", str(src), str(dst)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"espeak-ng synthesis failed:\n{proc.stderr[-2000:]}")
        with np.load(dst) as data:
            lengths = data["lengths"]
            flat = data["samples"]
            rate = int(data["rate"])
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [flat[a:b] for a, b in itertools.pairwise(bounds)], rate


def _main(argv: list[str]) -> None:
    import json
    from pathlib import Path

    jobs = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    clips = _synthesise_here(jobs)
    np.savez(argv[1], samples=np.concatenate(clips) if clips else np.zeros(0, np.int16),
             lengths=np.array([len(c) for c in clips], dtype=np.int64),
             rate=np.array(get_espeak().sample_rate))


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
