"""Two bureaus, each with a manager and a standard user, made through the API by the platform administrator."""
import uuid
from dataclasses import dataclass


@dataclass
class Tenant:
    bureau: str  # absolute URI
    manager: object  # logged-in ApiSession
    standard: object
    manager_user: str
    standard_user: str


def make_tenant(admin, login, label):
    tag = uuid.uuid4().hex[:6]
    created = admin.post("/bureau/", json={"name": f"{label} bureau {tag}"})
    assert created.status_code == 201, created.text
    bureau = created.headers["Location"]
    users = {}
    for role in ("manager", "standard-user"):
        username = f"{role}-{label}-{tag}@example.com".lower()
        response = admin.post("/users/", json={"username": username, "email": username, "name": f"{label} {role}",
                                               "bureau": bureau, "password": f"pw-{tag}-{role}"})
        assert response.status_code == 201, response.text
        user = response.headers["Location"]
        csrf = admin.get("/csrf-token/").json()["token"]
        granted = admin.post("/role/", json={"bureau": bureau, "user": user, "role": role, "csrf_token": csrf})
        assert granted.status_code == 201, granted.text
        users[role] = (user, login(admin.base_url, username, f"pw-{tag}-{role}"))
    return Tenant(bureau=bureau, manager=users["manager"][1], standard=users["standard-user"][1],
                  manager_user=users["manager"][0], standard_user=users["standard-user"][0])
