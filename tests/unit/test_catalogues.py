"""The shipped reference lists: ICD-10 codes and the medicine catalogue."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from clinic_desktop.models import AuditEvent, Medicine
from clinic_desktop.services import catalogues
from clinic_desktop.services.context import Desk
from clinic_desktop.services.errors import NotFound, PermissionDenied, ValidationError
from tests.unit.clinic_world import World, build_world


@pytest.fixture
def world(bare_desk: Desk) -> World:
    return build_world(bare_desk)


# --- resource lookup ----------------------------------------------------------------------


def test_resources_are_found_beside_the_package_in_a_checkout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(catalogues.RESOURCES_ENV, raising=False)
    directory = catalogues.resources_dir()
    assert (directory / catalogues.ICD10_FILE).is_file()
    assert (directory / catalogues.MEDICINES_FILE).is_file()


def test_a_pyinstaller_bundle_reads_resources_from_its_unpack_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(catalogues.RESOURCES_ENV, raising=False)
    monkeypatch.setattr("sys._MEIPASS", str(tmp_path), raising=False)
    assert catalogues.resources_dir() == tmp_path / "resources"


def test_the_environment_variable_overrides_the_resource_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("sys._MEIPASS", "/elsewhere", raising=False)
    monkeypatch.setenv(catalogues.RESOURCES_ENV, str(tmp_path))
    assert catalogues.resources_dir() == tmp_path


# --- ICD-10 -------------------------------------------------------------------------------


def test_the_shipped_icd10_list_has_several_hundred_well_formed_unique_codes() -> None:
    index = catalogues.load_icd10()
    assert len(index) >= 400
    path = catalogues.resources_dir() / catalogues.ICD10_FILE
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]
    codes = [code for code, _title in rows]
    assert len(codes) == len(set(codes))
    for code, title in rows:
        assert re.fullmatch(r"[A-Z]\d\d(\.\d)?", code), code
        assert title == title.strip(), code
        assert title, code


@pytest.mark.parametrize(
    ("code", "title"),
    [
        ("J06.9", "Acute upper respiratory infection, unspecified"),
        ("I10", "Essential (primary) hypertension"),
        ("E11.9", "Type 2 diabetes mellitus without complications"),
        ("N39.0", "Urinary tract infection, site not specified"),
        ("K21.9", "Gastro-oesophageal reflux disease without oesophagitis"),
        ("M54.5", "Low back pain"),
    ],
)
def test_common_outpatient_codes_have_their_who_titles(code: str, title: str) -> None:
    assert catalogues.icd10_title(code) == title


def test_lookup_tolerates_case_spaces_and_a_missing_dot() -> None:
    index = catalogues.icd10()
    assert index.get(" j06.9 ") == index.get("J069") == index.get("J06.9")
    assert index.get("J06.9") is not None
    assert index.get("X99.9") is None
    assert index.get("") is None
    assert catalogues.icd10_title("not a code") == ""


def test_search_by_code_prefix_lists_the_codes_under_it() -> None:
    codes = [c.code for c in catalogues.search_icd10("E11")]
    assert "E11.9" in codes
    assert all(code.startswith("E11") for code in codes)
    assert codes == sorted(codes)
    assert [c.code for c in catalogues.search_icd10("j06.")] == ["J06.9"]


def test_search_by_words_in_any_order_and_by_word_prefix() -> None:
    codes = [c.code for c in catalogues.search_icd10("upper resp infect")]
    assert codes == ["J06.9"]
    titles = [c.title for c in catalogues.search_icd10("diabetes type 2")]
    assert titles
    assert all("Type 2 diabetes" in t for t in titles)


def test_search_understands_american_spellings_and_common_abbreviations() -> None:
    assert "D64.9" in [c.code for c in catalogues.search_icd10("anemia")]
    assert "K21.9" in [c.code for c in catalogues.search_icd10("esophagitis")]
    assert "N39.0" in [c.code for c in catalogues.search_icd10("UTI")]
    assert "I10" in [c.code for c in catalogues.search_icd10("htn")]
    assert "J00" in [c.code for c in catalogues.search_icd10("common cold")]


def test_titles_that_start_with_the_first_word_rank_first() -> None:
    results = catalogues.search_icd10("asthma")
    assert results[0].title.startswith("Asthma")


def test_search_limits_results_and_ignores_empty_queries() -> None:
    assert len(catalogues.search_icd10("unspecified", limit=5)) == 5
    assert catalogues.search_icd10("   ") == []
    assert catalogues.search_icd10("zzzz qqqq") == []
    assert catalogues.search_icd10("'; DROP TABLE visit;--") == []


def test_icd10_search_is_fast_enough_for_typing() -> None:
    catalogues.icd10()
    started = time.perf_counter()
    for query in ("a", "pain", "J0", "type 2 diab", "infection unspecified") * 40:
        catalogues.search_icd10(query)
    per_query_ms = (time.perf_counter() - started) * 1000 / 200
    assert per_query_ms < 20


def test_a_malformed_icd10_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "icd.tsv"
    bad.write_text("J06.9,Acute upper respiratory infection\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        catalogues.load_icd10(bad)


# --- medicines ----------------------------------------------------------------------------


def test_the_starter_catalogue_has_complete_rows_with_drug_classes() -> None:
    rows = catalogues.load_medicine_rows()
    assert len(rows) >= 150
    assert len({r.generic_name for r in rows}) >= 150 * 0.8
    for row in rows:
        assert row.name
        assert row.generic_name
        assert row.form
        assert row.route
        assert row.drug_class
    classes = {r.drug_class for r in rows if r.generic_name == "amoxicillin"}
    assert any("penicillin" in c for c in classes)


def test_seeding_fills_an_empty_table_once_and_is_audited(world: World) -> None:
    added = catalogues.seed_medicines(world.desk, world.admin)
    assert added == len(catalogues.load_medicine_rows())
    assert catalogues.seed_medicines(world.desk, world.admin) == 0
    with world.desk.reading() as session:
        assert session.scalar(select(func.count()).select_from(Medicine)) == added
        seeded = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "medicine.seed")
        ).all()
    assert seeded == [f"count={added}"]


def test_seeding_needs_an_active_admin(world: World) -> None:
    with pytest.raises(PermissionDenied):
        catalogues.seed_medicines(world.desk, world.doctor)
    world.disable(world.admin)
    with pytest.raises(PermissionDenied, match="disabled"):
        catalogues.seed_medicines(world.desk, world.admin)
    assert catalogues.search_medicines(world.desk, "amox") == []


def test_setup_can_seed_without_a_signed_in_user(world: World) -> None:
    assert catalogues.seed_medicines(world.desk, None) > 0


def test_autocomplete_matches_name_prefixes_and_strengths(world: World) -> None:
    catalogues.seed_medicines(world.desk, world.admin)
    found = catalogues.search_medicines(world.desk, "amox 500")
    assert found
    assert all("500" in m.strength for m in found)
    assert found[0].name == "Amoxicillin"
    assert found[0].label == "Amoxicillin 500 mg capsule"
    assert {m.name for m in catalogues.search_medicines(world.desk, "AMOXI")} >= {
        "Amoxicillin",
        "Co-amoxiclav",
    }


def test_autocomplete_finds_by_generic_name(world: World) -> None:
    catalogues.seed_medicines(world.desk, world.admin)
    names = {m.name for m in catalogues.search_medicines(world.desk, "acetylsalicylic")}
    assert names == {"Aspirin"}
    names = {m.name for m in catalogues.search_medicines(world.desk, "clavulanic")}
    assert names == {"Co-amoxiclav"}


def test_names_starting_with_the_query_rank_before_generic_matches(world: World) -> None:
    catalogues.seed_medicines(world.desk, world.admin)
    found = catalogues.search_medicines(world.desk, "amoxicillin")
    first_other = next(i for i, m in enumerate(found) if m.name != "Amoxicillin")
    assert all(m.name == "Amoxicillin" for m in found[:first_other])


def test_autocomplete_treats_like_wildcards_as_text(world: World) -> None:
    catalogues.seed_medicines(world.desk, world.admin)
    assert catalogues.search_medicines(world.desk, "a%n") == []
    assert catalogues.search_medicines(world.desk, "_moxicillin") == []
    creams = catalogues.search_medicines(world.desk, "1 %")
    assert "Clotrimazole" in {m.name for m in creams}
    assert all("%" in m.strength for m in creams)
    assert catalogues.search_medicines(world.desk, "") == []


def test_autocomplete_skips_tombstoned_medicines(world: World) -> None:
    catalogues.seed_medicines(world.desk, world.admin)
    with world.desk.transaction(world.admin) as session:
        for row in session.scalars(select(Medicine).where(Medicine.name == "Cetirizine")):
            row.deleted = True
    assert catalogues.search_medicines(world.desk, "cetirizine") == []
    assert catalogues.search_medicines(world.desk, "levocetirizine")


def test_get_medicine_returns_none_for_unknown_ids(world: World) -> None:
    catalogues.seed_medicines(world.desk, world.admin)
    option = catalogues.search_medicines(world.desk, "ibuprofen 400")[0]
    assert catalogues.get_medicine(world.desk, option.id) == option
    assert catalogues.get_medicine(world.desk, "nope") is None


def test_admins_add_medicines_that_autocomplete_and_take_part_in_allergy_checks(
    world: World,
) -> None:
    from clinic_desktop.services import prescriptions

    added = catalogues.add_medicine(
        world.desk,
        world.admin,
        name="  Cefaclor ",
        generic_name="cefaclor",
        strength="250 mg",
        form="capsule",
        route="oral",
        drug_class="cephalosporins (beta-lactam antibiotics)",
    )
    assert added.name == "Cefaclor"
    assert [m.id for m in catalogues.search_medicines(world.desk, "cefac")] == [added.id]
    hits = prescriptions.match_allergies(
        "beta-lactams", added.name, added.generic_name, added.drug_class
    )
    assert hits
    assert world.audit_actions()[-1] == "medicine.create"


def test_bad_or_duplicate_medicines_are_refused(world: World) -> None:
    catalogues.add_medicine(world.desk, world.admin, name="Cefaclor", strength="250 mg")
    before = world.outbox_count()
    with pytest.raises(ValidationError, match="already in the catalogue"):
        catalogues.add_medicine(world.desk, world.admin, name="cefaclor", strength="250 MG")
    with pytest.raises(ValidationError, match="Enter the medicine"):
        catalogues.add_medicine(world.desk, world.admin, name="   ")
    with pytest.raises(ValidationError, match="too long"):
        catalogues.add_medicine(world.desk, world.admin, name="x", drug_class="y" * 101)
    with pytest.raises(PermissionDenied):
        catalogues.add_medicine(world.desk, world.doctor, name="Something")
    assert world.outbox_count() == before


def test_removed_medicines_leave_the_autocomplete(world: World) -> None:
    added = catalogues.add_medicine(world.desk, world.admin, name="Cefaclor")
    catalogues.remove_medicine(world.desk, world.admin, added.id)
    assert catalogues.search_medicines(world.desk, "cefaclor") == []
    with pytest.raises(NotFound):
        catalogues.remove_medicine(world.desk, world.admin, added.id)
