"""Method paths of the services a client hosts in a session (upstream's package and service names)."""
from __future__ import annotations

FILESYNC_DIFFCOPY = "/moby.filesync.v1.FileSync/DiffCopy"
FILESYNC_TARSTREAM = "/moby.filesync.v1.FileSync/TarStream"
FILESEND_DIFFCOPY = "/moby.filesync.v1.FileSend/DiffCopy"
SECRETS_GET = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
SSH_CHECK = "/moby.sshforward.v1.SSH/CheckAgent"
SSH_FORWARD = "/moby.sshforward.v1.SSH/ForwardAgent"
AUTH_CREDENTIALS = "/moby.filesync.v1.Auth/Credentials"
AUTH_FETCH_TOKEN = "/moby.filesync.v1.Auth/FetchToken"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
#: pybuildkit's batched twins of the DiffCopy methods (appliance/session/packets.py)
FILESYNC_DIFFCOPY_BATCHED = "/pybuildkit.filesync.v1.FileSync/DiffCopy"
FILESEND_DIFFCOPY_BATCHED = "/pybuildkit.filesync.v1.FileSend/DiffCopy"

HEADER_UUID = "x-docker-expose-session-uuid"
HEADER_NAME = "x-docker-expose-session-name"
HEADER_SHARED_KEY = "x-docker-expose-session-sharedkey"
HEADER_METHOD = "x-docker-expose-session-grpc-method"

#: FileSync request metadata (daemon -> client)
KEY_DIR_NAME = "dir-name"
KEY_INCLUDE = "include-patterns"
KEY_EXCLUDE = "exclude-patterns"
KEY_FOLLOW = "followpaths"
#: on the batched FileSync twin only: the walk digest of the tree the daemon's mirror holds
KEY_KNOWN_WALK = "pbk-known-walk"
KEY_EXPORTER_ID = "buildkit-attachable-exporter-id"
EXPORTER_MD_PREFIX = "exporter-md-"
KEY_SSH_ID = "buildkit.ssh.id"


def split(path: str) -> tuple[str, str]:
    """`/pkg.Service/Method` -> ("pkg.Service", "Method")."""
    service, _, method = path.strip("/").partition("/")
    return service, method
