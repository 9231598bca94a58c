"""The Kubernetes manifests of deploy/kubernetes/: render, validate offline, and turn into what podman kube play runs.

``render`` renders a kustomization the way ``kubectl kustomize`` does, for the kustomize features this project's
kustomizations use (resources, configMapGenerator with kustomize's content-hash name suffix, images, and patches
of whole objects whose lists are replaced rather than merged); the tests compare it with kubectl's output
wherever kubectl is installed. It exists so that validation and podman need no kubectl::

    python -m nertools.manifests render deploy/kubernetes/base
    python -m nertools.manifests validate deploy/kubernetes/base deploy/kubernetes/overlays/queue-time-hpa
    python -m nertools.manifests kube-play deploy/kubernetes/base --port inference=18080 --port gateway=18000 \\
        --api-keys-file keys.txt > play.yaml && podman kube play --network ner play.yaml

``validate`` checks every object against the Kubernetes JSON schemas that kubernetes-validate ships, in strict
mode (unknown fields are errors). An object of a built-in API group whose schema is missing (a typo in the kind,
a removed apiVersion) is an error too, where kubernetes-validate itself only warns; only custom resources (API
groups outside Kubernetes, such as KServe's) are skipped.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# The Deployment whose API keys come from a Secret (NER_GATEWAY_API_KEYS_FILE).
GATEWAY = "ner-gateway"
# kustomize's order of kinds in its output (its "legacy" sort); other kinds come between these and the last ones.
_ORDER_FIRST = [
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount", "PodSecurityPolicy",
    "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap", "Secret", "Endpoints", "Service",
    "LimitRange", "PriorityClass", "PersistentVolume", "PersistentVolumeClaim", "Deployment", "StatefulSet",
    "CronJob", "PodDisruptionBudget",
]  # fmt: skip
_ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


class ManifestError(ValueError):
    """A kustomization this renderer cannot render, or manifests that fail validation (the message says which)."""


# --- rendering ----------------------------------------------------------------------------------------------------


def render(directory: str | Path) -> list[Resource]:
    """The objects ``kubectl kustomize DIRECTORY`` prints, in kustomize's order."""
    return _sorted(_render(Path(directory)))


def to_yaml(resources: Iterable[Resource]) -> str:
    """Objects as one multi-document YAML text (what ``podman kube play`` and ``kubectl apply -f`` read)."""
    return "---\n".join(yaml.safe_dump(resource, sort_keys=True) for resource in resources)


def _render(directory: Path) -> list[Resource]:
    kustomization = _read_kustomization(directory)
    known = {"apiVersion", "kind", "resources", "configMapGenerator", "generatorOptions", "images", "patches"}
    unknown = sorted(set(kustomization) - known)
    if unknown:
        raise ManifestError(f"{directory}: kustomization fields {unknown} are not supported by nertools.manifests")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        resources.extend(_render(path) if path.is_dir() else _load_documents(path))
    suffix = not kustomization.get("generatorOptions", {}).get("disableNameSuffixHash", False)
    renamed: dict[str, str] = {}
    for generator in kustomization.get("configMapGenerator", []):
        config_map = _generate_config_map(directory, generator, suffix)
        renamed[generator["name"]] = config_map["metadata"]["name"]
        resources.append(config_map)
    for patch in kustomization.get("patches", []):
        _apply_patch(resources, directory, patch)
    for resource in resources:
        _rename_config_maps(resource, renamed)
        for image in kustomization.get("images", []):
            _set_image(resource, image)
    return resources


def _read_kustomization(directory: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            loaded = yaml.safe_load((directory / name).read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                raise ManifestError(f"{directory / name} is not a mapping")
            return loaded
    raise ManifestError(f"{directory} has no kustomization.yaml")


def _load_documents(path: Path) -> list[Resource]:
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    for doc in documents:
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise ManifestError(f"{path}: every document must be a Kubernetes object with kind and metadata")
    return documents


def _generate_config_map(directory: Path, generator: Mapping[str, Any], suffix: bool) -> Resource:
    if set(generator) - {"name", "files", "options"}:
        raise ManifestError(f"{directory}: configMapGenerator supports name, files and options only")
    data: dict[str, str] = {}
    for entry in generator.get("files", []):
        key, _, file = entry.rpartition("=")
        key = key or Path(file).name
        data[key] = (directory / file).read_text(encoding="utf-8")
    name = generator["name"]
    if suffix:
        name = f"{name}-{config_map_hash(data)}"
    metadata: dict[str, Any] = {"name": name}
    options = generator.get("options", {})
    if options.get("labels"):
        metadata["labels"] = dict(options["labels"])
    if options.get("annotations"):
        metadata["annotations"] = dict(options["annotations"])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def config_map_hash(data: Mapping[str, str]) -> str:
    """kustomize's name suffix for a generated ConfigMap: the first 10 hex digits of the SHA-256 of its JSON
    encoding (Go's: sorted keys, no spaces, <>& escaped; kustomize hashes it before naming it, so the name is
    empty), with 0 1 3 a e replaced so it never reads as a number or a word."""
    encoded = json.dumps({"data": dict(data), "kind": "ConfigMap", "name": ""}, sort_keys=True, separators=(",", ":"))
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        encoded = encoded.replace(char, escape)
    digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _apply_patch(resources: list[Resource], directory: Path, patch: Mapping[str, Any]) -> None:
    if set(patch) != {"path"}:
        raise ManifestError(f"{directory}: only `patches: - path: FILE` (whole-object patches) is supported")
    for change in _load_documents(directory / patch["path"]):
        target = [r for r in resources if _identity(r) == _identity(change)]
        if len(target) != 1:
            raise ManifestError(f"{directory / patch['path']}: no single object {_identity(change)} to patch")
        _merge(target[0], change)


def _identity(resource: Mapping[str, Any]) -> tuple[str, str, str]:
    group = resource["apiVersion"].rpartition("/")[0]
    return group, resource["kind"], resource["metadata"]["name"]


def _merge(target: dict[str, Any], change: Mapping[str, Any]) -> None:
    """Maps merge key by key; lists and scalars replace (what kustomize does for lists without a merge key)."""
    for key, value in change.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)


def _pod_specs(resource: Resource) -> list[dict[str, Any]]:
    if resource["kind"] == "Pod":
        return [resource["spec"]]
    template = resource.get("spec", {}).get("template", {})
    if resource["kind"] == "CronJob":
        template = resource["spec"]["jobTemplate"]["spec"]["template"]
    return [template["spec"]] if "spec" in template else []


def _containers(resource: Resource) -> list[dict[str, Any]]:
    return [c for spec in _pod_specs(resource) for c in spec.get("initContainers", []) + spec.get("containers", [])]


def _rename_config_maps(resource: Resource, renamed: Mapping[str, str]) -> None:
    for spec in _pod_specs(resource):
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                volume["configMap"]["name"] = renamed.get(volume["configMap"]["name"], volume["configMap"]["name"])
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    ref = source["configMapRef"]
                    ref["name"] = renamed.get(ref["name"], ref["name"])
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    ref["name"] = renamed.get(ref["name"], ref["name"])


def _set_image(resource: Resource, image: Mapping[str, str]) -> None:
    for container in _containers(resource):
        name, tag, digest = _split_image(container["image"])
        if name != image["name"]:
            continue
        name = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{name}@{image['digest']}"
        elif "newTag" in image:
            container["image"] = f"{name}:{image['newTag']}"
        else:
            container["image"] = name + (f"@{digest}" if digest else f":{tag}" if tag else "")


def _split_image(image: str) -> tuple[str, str, str]:
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def _sorted(resources: list[Resource]) -> list[Resource]:
    def key(resource: Resource) -> tuple[int, str, str]:
        kind = resource["kind"]
        if kind in _ORDER_FIRST:
            rank = _ORDER_FIRST.index(kind)
        elif kind in _ORDER_LAST:
            rank = len(_ORDER_FIRST) + 1 + _ORDER_LAST.index(kind)
        else:
            rank = len(_ORDER_FIRST)
        group = resource["apiVersion"].replace("/", "_")
        return rank, f"{group}_{kind}" if rank == len(_ORDER_FIRST) else "", resource["metadata"]["name"]

    return sorted(resources, key=key)


# --- validation ---------------------------------------------------------------------------------------------------


def is_builtin(api_version: str) -> bool:
    """Whether an apiVersion belongs to Kubernetes itself (core ``v1``, ``apps/v1``, ``*.k8s.io``), as opposed to
    a custom resource whose schema kubernetes-validate cannot know."""
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def supported_versions() -> list[str]:
    """Kubernetes versions whose schemas the installed kubernetes-validate ships, oldest first."""
    from kubernetes_validate import utils  # type: ignore[import-untyped]

    versions: list[str] = utils.all_versions()
    return versions


def validate(resources: Iterable[Resource], kubernetes_version: str, strict: bool = True) -> list[str]:
    """One line per problem (empty when every object is valid) against Kubernetes ``kubernetes_version``."""
    from kubernetes_validate import utils

    problems = []
    for resource in resources:
        name = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
        try:
            utils.validate(resource, kubernetes_version, strict)
        except utils.ValidationError as err:
            where = ".".join(str(item) for item in err.path) or "(top)"
            problems.append(f"{name}: {where}: {err.message}")
        except utils.SchemaNotFoundError as err:
            if is_builtin(str(resource.get("apiVersion", ""))):
                problems.append(f"{name}: {err.message}")
    return problems


# --- podman kube play ---------------------------------------------------------------------------------------------


def kube_play(
    resources: Iterable[Resource],
    host_ports: Mapping[str, int],
    api_keys: str | None = None,
    host_ip: str = "127.0.0.1",
) -> list[Resource]:
    """What ``podman kube play`` can run of the rendered manifests, for one machine.

    Each Deployment becomes one Pod of the same name (podman runs a single replica, and a Pod's name is also its
    DNS name on a podman network); ConfigMaps stay; Services, autoscalers, disruption budgets and network policies
    are dropped, since podman does not run them, and an environment value addressing a Service
    (``http://SERVICE:PORT``) addresses the Pod it selects instead. Images are local (imagePullPolicy Never).
    ``host_ports`` maps container port names (inference, management, metrics, http) to host ports bound on
    ``host_ip``; other ports stay unpublished. ``api_keys`` (``id:secret,...``) replaces the gateway's keys
    Secret, which podman cannot mount from a Kubernetes Secret.
    """
    resources = list(resources)
    deployments = [r for r in resources if r["kind"] == "Deployment"]
    known = {p.get("name") for d in deployments for c in _containers(d) for p in c.get("ports", [])}
    unknown = sorted(set(host_ports) - known)
    if unknown:
        raise ManifestError(f"unknown port names {unknown}; known: {sorted(n for n in known if n)}")
    addresses = {}
    for service in (r for r in resources if r["kind"] == "Service"):
        selector = service["spec"].get("selector", {}).items()
        for deployment in deployments:
            if selector and selector <= deployment["spec"]["template"]["metadata"]["labels"].items():
                addresses[f"http://{service['metadata']['name']}:"] = f"http://{deployment['metadata']['name']}:"
    played: list[Resource] = []
    for resource in resources:
        if resource["kind"] == "ConfigMap":
            played.append(copy.deepcopy(resource))
        elif resource["kind"] == "Deployment":
            played.append(_as_pod(resource, host_ports, addresses, api_keys, host_ip))
    return played


def _as_pod(
    deployment: Resource,
    host_ports: Mapping[str, int],
    addresses: Mapping[str, str],
    api_keys: str | None,
    host_ip: str,
) -> Resource:
    template = copy.deepcopy(deployment["spec"]["template"])
    metadata = {**template.get("metadata", {}), "name": deployment["metadata"]["name"]}
    spec = template["spec"]
    for container in spec["containers"]:
        container["imagePullPolicy"] = "Never"
        for port in container.get("ports", []):
            if port.get("name") in host_ports:
                port["hostPort"] = host_ports[port["name"]]
                port["hostIP"] = host_ip
        for variable in container.get("env", []):
            for service, pod in addresses.items():
                if "value" in variable and variable["value"].startswith(service):
                    variable["value"] = pod + variable["value"][len(service) :]
    if deployment["metadata"]["name"] == GATEWAY:
        _replace_key_secret(spec, api_keys)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _replace_key_secret(spec: dict[str, Any], api_keys: str | None) -> None:
    if api_keys is None:
        raise ManifestError("the gateway needs API keys under podman (api_keys='id:secret')")
    secret_volumes = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
    spec["volumes"] = [v for v in spec.get("volumes", []) if v["name"] not in secret_volumes]
    for container in spec["containers"]:
        container["volumeMounts"] = [m for m in container.get("volumeMounts", []) if m["name"] not in secret_volumes]
        env = [v for v in container.get("env", []) if v["name"] != "NER_GATEWAY_API_KEYS_FILE"]
        container["env"] = [*env, {"name": "NER_GATEWAY_API_KEYS", "value": api_keys}]


# --- command line -------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    render_parser = commands.add_parser("render", help="print the rendered manifests of a kustomization")
    render_parser.add_argument("directory")
    validate_parser = commands.add_parser("validate", help="validate kustomizations against Kubernetes schemas")
    validate_parser.add_argument("directories", nargs="+")
    validate_parser.add_argument(
        "--kubernetes-version",
        action="append",
        help="validate against this version (repeatable; default: the oldest and newest supported)",
    )
    play_parser = commands.add_parser("kube-play", help="print what podman kube play runs of a kustomization")
    play_parser.add_argument("directory")
    play_parser.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="NAME=HOSTPORT",
        help="publish a container port by name (inference, management, metrics, http) on 127.0.0.1:HOSTPORT",
    )
    play_parser.add_argument("--api-keys-file", help="the gateway's keys, one id:secret a line")
    args = parser.parse_args(argv)
    try:
        if args.command == "render":
            sys.stdout.write(to_yaml(render(args.directory)))
        elif args.command == "validate":
            versions = args.kubernetes_version or [supported_versions()[0], supported_versions()[-1]]
            failed = False
            for directory in args.directories:
                resources = render(directory)
                for version in versions:
                    problems = validate(resources, version)
                    failed = failed or bool(problems)
                    for problem in problems:
                        print(f"{directory} (Kubernetes {version}): {problem}", file=sys.stderr)
                    if not problems:
                        print(f"{directory}: {len(resources)} objects valid for Kubernetes {version} (strict)")
            return 1 if failed else 0
        else:
            ports = {}
            for item in args.port:
                name, _, port = item.partition("=")
                ports[name] = int(port)
            keys = None
            if args.api_keys_file:
                lines = Path(args.api_keys_file).read_text(encoding="utf-8").splitlines()
                keys = ",".join(line.strip() for line in lines if line.strip() and not line.startswith("#"))
            sys.stdout.write(to_yaml(kube_play(render(args.directory), ports, keys)))
    except (ManifestError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
