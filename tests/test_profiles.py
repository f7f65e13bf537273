"""Requirement profiles: shipped ones load; bad ones are refused with the key at fault."""
import pytest

from bench.profiles import ProfileError, load_profile

HEAD = '[profile]\nid = "site"\ntitle = "site"\n'


def _write(tmp_path, body, name="site.toml"):
    path = tmp_path / name
    path.write_text(HEAD + body)
    return path


@pytest.mark.parametrize("name", ["ieee2800_2022", "ieee1547_cat3"])
def test_shipped_profiles_load(name):
    profile = load_profile(name)
    assert profile.regions("lvrt.regions")
    assert profile.clause("lvrt.power_recovery.within", "s").clause
    assert profile.setting("lvrt.test_points")


def test_region_lookup():
    profile = load_profile("ieee1547_cat3")
    assert profile.region_for("lvrt.regions", 0.6).kind == "mandatory_operation"
    assert profile.region_for("lvrt.regions", 0.4).kind == "momentary_cessation"
    assert profile.region_for("lvrt.regions", 0.95) is None


def test_unit_mismatch_is_refused():
    profile = load_profile("ieee2800_2022")
    with pytest.raises(ProfileError, match="units 'cycles' but the plan needs 's'"):
        profile.clause("lvrt.reactive_current.response_time", "s")


def test_missing_clause_is_named():
    profile = load_profile("ieee2800_2022")
    with pytest.raises(ProfileError, match="lvrt.no_such_thing"):
        profile.clause("lvrt.no_such_thing", "s")


def test_clause_without_source_is_refused(tmp_path):
    path = _write(tmp_path, '[lvrt.limit]\nvalue = 1.0\nunits = "s"\nconfidence = "primary"\n')
    with pytest.raises(ProfileError, match="clause has no 'clause'"):
        load_profile(str(path))


def test_non_monotonic_curve_is_refused(tmp_path):
    body = (
        '[[lvrt.regions]]\nkind = "mandatory_operation"\nv_min_pu = 0.7\nv_max_pu = 0.9\nduration_s = 1.0\n'
        'clause = "x"\nconfidence = "site"\n'
        '[[lvrt.regions]]\nkind = "mandatory_operation"\nv_min_pu = 0.5\nv_max_pu = 0.7\nduration_s = 5.0\n'
        'clause = "x"\nconfidence = "site"\n'
    )
    with pytest.raises(ProfileError, match="not monotonic"):
        load_profile(str(_write(tmp_path, body)))


def test_overlapping_bands_are_refused(tmp_path):
    body = (
        '[[lvrt.regions]]\nkind = "mandatory_operation"\nv_min_pu = 0.5\nv_max_pu = 0.9\nduration_s = 1.0\n'
        'clause = "x"\nconfidence = "site"\n'
        '[[lvrt.regions]]\nkind = "mandatory_operation"\nv_min_pu = 0.3\nv_max_pu = 0.6\nduration_s = 1.0\n'
        'clause = "x"\nconfidence = "site"\n'
    )
    with pytest.raises(ProfileError, match="overlap"):
        load_profile(str(_write(tmp_path, body)))


def test_site_profile_inherits_and_overrides(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(
        '[profile]\nid = "site"\ntitle = "site"\ninherits = "ieee2800_2022"\n'
        '[lvrt.power_recovery.within]\nvalue = 0.5\nunits = "s"\nclause = "Utility X interconnection handbook"\n'
        'confidence = "site"\n'
    )
    profile = load_profile(str(path))
    assert profile.clause("lvrt.power_recovery.within", "s").value == 0.5
    assert profile.clause("lvrt.reactive_current.response_time", "cycles").value == 2.5


def test_unknown_profile_lists_the_shipped_ones():
    with pytest.raises(ProfileError, match="ieee2800_2022"):
        load_profile("no_such_profile")
