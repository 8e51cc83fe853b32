"""A guard for the fixtures that give each test a database on a shared store and drop it after.

Dropping a database is only safe where databases are isolated. nx-27017 in its `--db FILE` mode
keeps every database name on one set of tables: a test's `drop_database` there empties every
database of that store, and a MONGO_URL pointing at such a store would lose its data to the
tests. The fixtures check the store once, with a probe that needs no drop where the check fails.
"""

import uuid

import pymongo


class SharedDatabasesError(RuntimeError):
    """The store's databases share data: dropping a test's database would touch the others."""


def assert_databases_isolated(url: str) -> None:
    """Raise SharedDatabasesError unless a document written in one database of the store at
    ``url`` is invisible in another.

    The probe writes one document to a collection of its own (a unique name, so on shared
    tables it is a table of its own too); where the databases turn out to be shared it removes
    that collection only, never a database."""
    tag = uuid.uuid4().hex[:12]
    names, collection = (f"test_{tag}_a", f"test_{tag}_b"), f"isolation_probe_{tag}"
    with pymongo.MongoClient(url, serverSelectionTimeoutMS=10000) as client:
        written, other = (client[name][collection] for name in names)
        written.insert_one({"_id": tag})
        shared = True  # until shown otherwise: then only the probe's collection is removed
        try:
            shared = other.find_one({"_id": tag}) is not None
        finally:
            if shared:
                written.drop()
            else:
                for name in names:
                    client.drop_database(name)
    if shared:
        raise SharedDatabasesError(
            f"the store at {url} shows one database's documents in another (nx-27017 in its "
            "--db FILE mode?): the tests drop their databases, which there would empty every "
            "database of the store; use a store that isolates databases (nx-27017 --data-dir)")
