"""The bench's own captures as COMTRADE, read back with an independent reader (`comtrade`)."""
import datetime as dt

import comtrade
import numpy as np
import pandas as pd
import pytest

from bench.comtrade_writer import write_comtrade
from bench.evidence import RunFolder, capture_as_comtrade

FS_HZ = 10_000.0


def _capture():
    t_s = np.arange(-0.05, 0.15, 1 / FS_HZ)
    frame = pd.DataFrame({"v_a": 392.0 * np.sin(2 * np.pi * 60 * t_s),
                          "i_a": 425.0 * np.sin(2 * np.pi * 60 * t_s - 0.3)},
                         index=pd.Index(t_s, name="t_s"))
    frame.attrs.update({"units": {"v_a": "V", "i_a": "A"}, "sample_rate_hz": FS_HZ, "line_frequency_hz": 60.0})
    return frame


def _read(cfg: bytes, dat: bytes, file_type: str):
    record = comtrade.Comtrade()
    record.read(cfg.decode("ascii"), dat if file_type == "BINARY" else dat.decode("ascii"))
    return record


@pytest.mark.parametrize("file_type", ["BINARY", "ASCII"])
def test_capture_round_trips_sample_by_sample(file_type):
    frame = _capture()
    files = write_comtrade(capture_as_comtrade(frame, "T7 test", dt.datetime(2026, 11, 27, 12, 0, 0)), file_type)
    record = _read(files.cfg, files.dat, file_type)
    assert record.analog_channel_ids == ["v_a", "i_a"]
    assert record.cfg.sample_rates[0][0] == pytest.approx(FS_HZ)
    for index, name in enumerate(["v_a", "i_a"]):
        written = frame[name].to_numpy()
        half_step = (written.max() - written.min()) / 2 / 32767 / 2
        np.testing.assert_allclose(np.asarray(record.analog[index]), written, atol=half_step * 1.01)
    # the trigger sits where t_s = 0 is in the capture
    assert (record.trigger_timestamp - record.start_timestamp).total_seconds() == pytest.approx(0.05, abs=1e-6)


def test_run_folder_writes_comtrade_next_to_parquet(tmp_path):
    run = RunFolder(tmp_path / "run")
    path = run.save_capture("test_T7[x]", "pcc_waveforms", _capture())
    assert path.with_suffix(".cfg").exists() and path.with_suffix(".dat").exists()
    record = _read(path.with_suffix(".cfg").read_bytes(), path.with_suffix(".dat").read_bytes(), "BINARY")
    assert len(record.analog[0]) == len(_capture())
