"""An empty, migrated read side on either database, for tests that write to and read from it directly."""
from gateway import readstore
from gateway.readstore import ReadStore


def empty_read_store(request, folder):
    """`request.param` names the database ("sqlite": a file in `folder`; "postgres": the session's throwaway
    database); the caller disposes of the store."""
    if request.param == "postgres":
        url = readstore.read_store_url({"STRATUM_POSTGRES_DSN": request.getfixturevalue("postgres_dsn")})
    else:
        url = "sqlite:///" + str(folder / "read.sqlite")
    store = ReadStore(url)
    store.create_tables()
    return store
