"""C2 — Protection and control settings verification (commissioning).

Procedure:
  setup    the site's approved settings file (the profile's `c2.settings_file`, relative to
           the profile's folder; format at the top of testplans/settings/vpcs_approved.toml)
           is read and checked; with `c2.procedure.load_approved_settings` the approved trip
           curves (SunSpec 707/708, adopted as the active curve) and vendor settings are
           loaded into the PCS first — the commissioning step "apply the site settings";
  stimulus none: nothing on the power side moves, the PCS need not run;
  capture  the PCS's active trip curves and momentary-cessation levels (707/708), the ratings
           it reports (702) and every vendor setting the file names (point map), read back
           after loading; approved and actual are kept side by side as evidence (CSV);
  judge    every setting equals its approved value within the profile's tolerance (the
           register resolution: trip voltages, trip times, other numbers as % of the approved
           value; enumerations exactly); each mismatch is listed with expected and actual.
Loading writes settings, so on a real PCS it needs --allow-control; with
load_approved_settings = false the check is read-only (settings loaded with the vendor's tool).
Reading back what was just written is the point: a PCS that stores something else than it
was sent (rounding, an offset, a clamp) is caught here, before it protects the site.
Every limit comes from the profile; the report names the clause that judged it.
"""
from __future__ import annotations

import csv

import pytest

from bench.settings_check import SettingComparison, Tolerances, compare_settings, load_approved_settings
from dut.errors import ModbusPointError

pytestmark = [pytest.mark.test_id("C2"), pytest.mark.profile_sections("c2")]


@pytest.fixture(scope="module")
def approved(profile):
    """The approved settings file the profile names."""
    return load_approved_settings(profile.path.parent / profile.setting("c2.settings_file"))


def _describe(c: SettingComparison) -> str:
    units = f" {c.units}" if c.units else ""
    expected = "no such point" if c.expected is None else f"{c.expected:g}{units}" if isinstance(c.expected, float) \
        else str(c.expected)
    actual = "not reported" if c.actual is None else f"{c.actual:g}{units}" if isinstance(c.actual, float) \
        else str(c.actual)
    within = f" (± {c.tolerance:g}{units})" if c.tolerance else ""
    return f"{c.name}: approved {expected}{within}, PCS has {actual}"


def test_C2_settings_match_approved(approved, pcs, profile, measurements, run_folder, request):
    procedure = profile.setting("c2.procedure")
    tolerances = {kind: profile.clause(f"c2.tolerance.{kind}", units)
                  for kind, units in (("trip_voltage", "pu"), ("trip_time", "s"), ("setting", "% of approved"))}
    exact = profile.clause("c2.mismatches_max", "settings")
    if approved.vendor and pcs.vendor is None:
        pytest.fail(f"{approved.path.name} names vendor settings ({', '.join(approved.vendor)}) but the bench's "
                    "PCS connection has no point map to read them (set point_map in the bench file)")

    # --- setup: load the approved settings (the commissioning step), when the profile says so --
    write_refusal = None
    if procedure["load_approved_settings"]:
        try:
            pcs.set_ride_through(approved.ride_through_settings())
        except ModbusPointError as exc:
            # The PCS adopted something other than it was sent (its read-back says so): keep
            # going, the comparison below lists every difference, which is what C2 is for.
            write_refusal = str(exc)
        measurements.record(
            "trip_curves_stored_as_written", 0.0 if write_refusal else 1.0, "bool", low=1.0,
            fail_message=f"the PCS did not store the trip curves as they were written: {write_refusal}")
        loadable = {name: value for name, value in approved.vendor.items() if pcs.vendor.map.has(name)}
        if loadable:
            # Not read back here: the comparison below is the read-back, and lists every
            # difference instead of stopping at the first (a point the map lacks shows there
            # as "not reported").
            pcs.vendor.write(loadable, verify=False)

    # --- capture: what the PCS holds -----------------------------------------------------
    vendor_units = {name: pcs.vendor.map.point(name).units or "" for name in approved.vendor
                    if pcs.vendor.map.has(name)} if approved.vendor else {}
    vendor_values = pcs.vendor.read([n for n in approved.vendor if pcs.vendor.map.has(n)]) if approved.vendor else {}
    comparisons = compare_settings(
        approved, pcs.ride_through(), pcs.ratings(), vendor_values,
        Tolerances(tolerances["trip_voltage"].value, tolerances["trip_time"].value, tolerances["setting"].value),
        vendor_units)
    folder = run_folder.captures_dir / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "settings_approved_vs_pcs.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["setting", "approved", "pcs", "tolerance", "units", "matches"])
        for c in comparisons:
            writer.writerow([c.name, c.expected, c.actual, c.tolerance, c.units, c.matches])

    # --- judge: each setting against its approved value -----------------------------------
    for c in comparisons:
        if c.kind == "exact" or c.expected is None or isinstance(c.actual, str):
            measurements.record(f"{c.name} differs", 0.0 if c.matches else 1.0, "settings", clause=exact,
                                high=exact.value, fail_message=_describe(c))
        else:
            clause = tolerances[c.kind]
            measurements.record(c.name, c.actual, c.units, clause=clause, low=c.expected - c.tolerance,
                                high=c.expected + c.tolerance, fail_message=_describe(c))
    differing = [c.name for c in comparisons if not c.matches]
    measurements.record("settings_compared", float(len(comparisons)), "settings")
    measurements.record("settings_differing", float(len(differing)), "settings")
    measurements.verdict()
