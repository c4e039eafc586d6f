from pathlib import Path

import pytest

from extractor.config import ConfigError, load_config


def test_no_config_file_gives_two_duckdb_files_under_warehouse(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.target == "duckdb"
    assert config.duckdb.identified_path == tmp_path / "warehouse" / "identified.duckdb"
    assert config.duckdb.deidentified_path == tmp_path / "warehouse" / "deidentified.duckdb"


def test_config_in_working_directory_is_found_and_paths_resolve_beside_it(tmp_path, monkeypatch):
    (tmp_path / "imgomop.toml").write_text('[warehouse.duckdb]\nidentified = "a/id.duckdb"\ndeidentified = "b/de.duckdb"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.duckdb.identified_path == tmp_path / "a" / "id.duckdb"
    assert config.source_file == tmp_path / "imgomop.toml"


@pytest.mark.parametrize(
    "text, message",
    [
        ('[warehouse]\ntarget = "oracle"\n', "target"),
        ('[warehouse.duckdb]\nidentified = "x.duckdb"\ndeidentified = "x.duckdb"\n', "same file"),
        ('[warehouse]\ntarget = "bigquery"\n[warehouse.bigquery]\nproject = "p"\n', "identified_dataset"),
        ("[warehouse\n", "not valid TOML"),
        ("[harvest]\nbatch_size = 0\n", "batch_size"),
        ('[warehouse]\nkind = "duckdb"\n', "[warehouse] has unknown key(s) kind; known keys: target"),
        ('[warehouse.duckdb]\nidentifed = "x.duckdb"\n', "[warehouse.duckdb] has unknown key(s) identifed"),
        ("[harvest]\nbatch = 10\n", "[harvest] has unknown key(s) batch; known keys: batch_size"),
    ],
)
def test_bad_config_names_file_and_problem(tmp_path, text, message):
    path = tmp_path / "imgomop.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Path(tmp_path / "nope.toml"))
