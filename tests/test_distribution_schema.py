"""The live schema, after every migration, is ready to shard by shop (decision 0026): keys carry shop_id."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from plugin import create_app, distribution
from plugin.db import engine_for


def test_every_table_has_a_role_and_every_per_shop_table_a_shop_id(database_url):
    engine = engine_for(database_url)
    names = distribution.tables(engine)
    assert {"members", "orders", "postings", "deliveries", "shops"} <= set(names)
    assert [str(v) for v in distribution.check(engine)] == []


def test_the_classification_names_only_tables_that_exist(database_url):
    names = set(distribution.tables(engine_for(database_url)))
    assert set(distribution.REFERENCE_TABLES) <= names
    assert set(distribution.COORDINATOR_TABLES) <= names


def postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite keeps single-column keys (decision 0004); the key rules are PostgreSQL's")


@pytest.fixture
def scratch(database_url):
    """Tables a test makes to break the rules, dropped afterwards (the database is shared by the whole run)."""
    postgresql_only(database_url)
    engine = engine_for(database_url)
    made: list[str] = []

    def make(name: str, ddl: str) -> None:
        made.append(name)
        with engine.begin() as connection:
            connection.execute(text(ddl))

    yield make
    with engine.begin() as connection:
        for name in reversed(made):
            connection.execute(text(f"DROP TABLE IF EXISTS {name} CASCADE"))


def test_the_keys_of_per_shop_tables_all_include_shop_id(database_url):
    postgresql_only(database_url)
    with engine_for(database_url).connect() as connection:
        primary = dict(
            connection.execute(
                text(
                    "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE contype = 'p' AND connamespace = current_schema()::regnamespace"
                )
            ).all()
        )
    assert primary["members"] == "PRIMARY KEY (shop_id, id)"
    assert primary["postings"] == "PRIMARY KEY (shop_id, id)"
    assert primary["shops"] == "PRIMARY KEY (id)"  # a reference table: copied whole to every node


def test_a_table_without_shop_id_is_caught(scratch, database_url):
    scratch("loyalty_badges", "CREATE TABLE loyalty_badges (id bigserial PRIMARY KEY, title text)")
    assert [(v.table, v.rule) for v in distribution.check(engine_for(database_url))] == [
        ("loyalty_badges", "per-shop table"),
        ("loyalty_badges", "primary key"),
    ]


def test_keys_without_shop_id_are_caught(scratch, database_url):
    scratch(
        "loyalty_tiers",
        "CREATE TABLE loyalty_tiers (id bigserial PRIMARY KEY, shop_id bigint NOT NULL, name text UNIQUE, "
        "member_id bigint)",
    )
    with engine_for(database_url).begin() as connection:
        connection.execute(text("CREATE UNIQUE INDEX uq_loyalty_tiers_member ON loyalty_tiers (member_id)"))
        connection.execute(text("ALTER TABLE loyalty_tiers ADD CONSTRAINT fk_tier_member "
                                "FOREIGN KEY (shop_id, member_id) REFERENCES members (id, shop_id)"))  # fmt: skip
    found = {(v.table, v.rule) for v in distribution.check(engine_for(database_url))}
    assert found == {
        ("loyalty_tiers", "primary key"),
        ("loyalty_tiers", "unique constraint"),
        ("loyalty_tiers", "unique index"),
        ("loyalty_tiers", "foreign key"),  # shop_id paired with members.id: the shard could not check it
    }


def test_a_nullable_or_integer_shop_id_is_caught(scratch, database_url):
    scratch("loyalty_a", "CREATE TABLE loyalty_a (shop_id bigint, id bigint, PRIMARY KEY (id, shop_id)) ")
    scratch("loyalty_b", "CREATE TABLE loyalty_b (shop_id integer NOT NULL, id bigint, PRIMARY KEY (shop_id, id))")
    found = {(v.table, v.rule) for v in distribution.check(engine_for(database_url))}
    # loyalty_a's shop_id is in its primary key, so PostgreSQL made it NOT NULL: only loyalty_b breaks a rule.
    assert found == {("loyalty_b", "colocation")}


def test_a_reference_table_may_not_refer_to_a_per_shop_table(scratch, database_url, monkeypatch):
    monkeypatch.setitem(distribution.REFERENCE_TABLES, "loyalty_catalogue", "a test's small table")
    scratch("loyalty_catalogue", "CREATE TABLE loyalty_catalogue (id bigint PRIMARY KEY, shop_id bigint NOT NULL, "
                                 "member_id bigint, FOREIGN KEY (shop_id, member_id) REFERENCES members)")  # fmt: skip
    found = [(v.table, v.rule) for v in distribution.check(engine_for(database_url))]
    assert found == [("loyalty_catalogue", "foreign key")]


def test_the_cli_checks_and_prints_the_citus_plan(settings, database_url):
    postgresql_only(database_url)
    runner = create_app(settings, TESTING=True).test_cli_runner()
    checked = runner.invoke(args=["loyalty", "distribution", "check"])
    assert checked.exit_code == 0, checked.output
    assert "postings: per-shop" in checked.output and "shops: reference" in checked.output
    planned = runner.invoke(args=["loyalty", "distribution", "plan"])
    assert planned.exit_code == 0, planned.output
    lines = planned.output.splitlines()
    assert "SELECT create_reference_table('shops');" in lines
    assert lines.index("SELECT create_distributed_table('members', 'shop_id');") < lines.index(
        "SELECT create_distributed_table('postings', 'shop_id', colocate_with => 'members');"
    )
    assert "SELECT citus_add_local_table_to_metadata('deliveries');" in lines
    every_table = set(distribution.tables(engine_for(database_url)))
    assert {line.split("'")[1] for line in lines} == every_table


def test_the_cli_refuses_to_plan_a_schema_that_breaks_the_rules(scratch, settings):
    scratch("loyalty_badges", "CREATE TABLE loyalty_badges (id bigserial PRIMARY KEY)")
    runner = create_app(settings, TESTING=True).test_cli_runner()
    checked = runner.invoke(args=["loyalty", "distribution", "check"])
    assert checked.exit_code == 1
    assert "loyalty_badges: per-shop table: has no shop_id column" in checked.output
    assert runner.invoke(args=["loyalty", "distribution", "plan"]).exit_code == 1
