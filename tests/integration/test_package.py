"""Packaging: what `make package` hands to users (scripts/package.sh, templates/, .chalice/).

The expensive part runs once per session: the module fixture copies the project (without the
virtualenv, dist/ or chalice's wheel cache, so it is what a fresh clone packages) and runs
scripts/package.sh on the copy. Packaging needs no AWS credentials and reaches the package index.

What is checked: the three templates pass cfn-lint; every advanced parameter is wired into the
resource it names and every output points at a real route; the API delivers protobuf bytes both
ways; the IAM variant signs every route; API Gateway's own answers are fixed lines that quote
nothing of the request and are deployed with the stage; the alarms watch the right metrics and
notify only a given topic; the dashboard is valid JSON naming every metric; IAM policies grant no
wildcard action; the zip holds the app, every pinned runtime requirement and Linux x86_64 builds
of the compiled ones (chalice drops wheels it finds incompatible without failing) and nothing
from the dev tooling.
"""

from __future__ import annotations

import copy
import importlib.metadata as metadata
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from chalicelib.config import ConfigError, load_settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VARIANTS = ("simple", "advanced", "advanced-iam")
PARAMETERISED = ("advanced", "advanced-iam")

ORIGINAL_PARAMETERS = {
    "LambdaFunctionName", "PrometheusDatabaseLabel", "PrometheusTableLabel", "MemorySize",
    "TimeoutInMillis", "ReadThrottlingBurstLimit", "WriteThrottlingBurstLimit", "RoleName",
    "ExecutionPolicyName", "TimestreamPolicyName", "APIGatewayStageName",
}
REQUIRED_OUTPUTS = {"InvokeWriteURL", "InvokeReadURL", "PrometheusDatabaseLabel", "PrometheusTableLabel"}
ROUTES = {"/write": "post", "/read": "post"}
URL_PREFIX = "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"

# Every action any policy of the project may grant; none may contain a wildcard.
ALLOWED_ACTIONS = {
    "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
    "timestream:DescribeEndpoints", "timestream:WriteRecords", "timestream:Select",
    "timestream:DescribeTable", "execute-api:Invoke",
}
# API Gateway's own answers (in the API definition, see templates/gateway-responses.yml), and the
# status each must have. None of them may quote the request: the defaults' $context.error.message
# quotes the Authorization header, basic-auth credentials included.
GATEWAY_RESPONSES = "x-amazon-apigateway-gateway-responses"
GATEWAY_RESPONSE_STATUS = {
    "MISSING_AUTHENTICATION_TOKEN": "404", "INCOMPLETE_SIGNATURE": "404", "INVALID_SIGNATURE": "403",
    "EXPIRED_TOKEN": "403", "ACCESS_DENIED": "403", "UNAUTHORIZED": "401",
    "THROTTLED": "503",  # a 5xx: Prometheus retries it, where it drops a 429 by default
    "REQUEST_TOO_LARGE": "413", "INTEGRATION_TIMEOUT": "504",
    "DEFAULT_4XX": None, "DEFAULT_5XX": None,  # keep the status of the type they stand in for
}
# With SigV4 checked by API Gateway, these also answer unsigned requests to /write and /read.
IAM_GATEWAY_RESPONSE_STATUS = {"MISSING_AUTHENTICATION_TOKEN": "403", "INCOMPLETE_SIGNATURE": "403"}
# The answers to a wrong URL or wrong credentials say where to send Prometheus's requests.
ROUTE_HINTS = ("MISSING_AUTHENTICATION_TOKEN", "INCOMPLETE_SIGNATURE", "INVALID_SIGNATURE", "UNAUTHORIZED", "DEFAULT_4XX")

# The connector's metrics (EMF in its log): every one carries Function; these also come by Reason.
WRITE_METRICS = (
    "SamplesWritten", "SamplesDropped", "SamplesRefused", "RecordsRejected", "TimestreamCalls",
    "TimestreamRetries", "TimestreamThrottles", "TimestreamWriteUnits", "RequestDuration",
)
READ_METRICS = ("ReadQueries", "ReadSeries", "ReadBytes", "ReadDuration")
BY_REASON = ("SamplesDropped", "SamplesRefused", "RecordsRejected")
METRICS_NAMESPACE = "PrometheusTimestream"
FUNCTION = {"Ref": "APIHandler"}  # the function's name
# alarm -> (namespace, metric, dimensions); the connector's own alarms exist only with a namespace
ALARMS = {
    "ApiServerErrorRateAlarm": (
        "AWS/ApiGateway", "5XXError",
        [{"Name": "ApiName", "Value": {"Ref": "LambdaFunctionName"}},
         {"Name": "Stage", "Value": {"Ref": "APIGatewayStageName"}}],
    ),
    "FunctionErrorsAlarm": ("AWS/Lambda", "Errors", [{"Name": "FunctionName", "Value": FUNCTION}]),
    "FunctionThrottlesAlarm": ("AWS/Lambda", "Throttles", [{"Name": "FunctionName", "Value": FUNCTION}]),
    "FunctionDurationAlarm": ("AWS/Lambda", "Duration", [{"Name": "FunctionName", "Value": FUNCTION}]),
    "TimestreamThrottlesAlarm": (
        {"Ref": "MetricsNamespace"}, "TimestreamThrottles", [{"Name": "Function", "Value": FUNCTION}]
    ),
    "SamplesRefusedAlarm": ({"Ref": "MetricsNamespace"}, "SamplesRefused", [{"Name": "Function", "Value": FUNCTION}]),
}
TOPIC = "arn:aws:sns:eu-west-1:111122223333:prometheus-alerts"

# The front door (templates/front-door.yml): API type x custom domain x mutual TLS.
DOMAIN = "metrics-ingest.example.com"
CERTIFICATE = "arn:aws:acm:eu-west-1:111122223333:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
TRUSTSTORE = "s3://example-truststores/prometheus/clients.pem"
DOMAIN_MODES = {
    "no domain": {},
    "domain": {"CustomDomainName": DOMAIN, "CertificateArn": CERTIFICATE, "HostedZoneId": "Z0123456789ABCDEFGHIJ"},
    "domain with mTLS": {"CustomDomainName": DOMAIN, "CertificateArn": CERTIFICATE, "TruststoreUri": TRUSTSTORE,
                         "TruststoreVersion": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"},
}
COMBINATIONS = [
    (variant, api_type, mode) for variant in PARAMETERISED for api_type in ("REST", "HTTP") for mode in DOMAIN_MODES
]

# glibc of the Lambda runtime's OS: Amazon Linux 2 up to python3.11, Amazon Linux 2023 after.
RUNTIME_GLIBC = {"python3.10": (2, 26), "python3.11": (2, 26), "python3.12": (2, 34), "python3.13": (2, 34)}
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
ELF_X86_64 = 62
# chalice copies these two modules of itself into every zip: they are the runtime of app.py.
CHALICE_RUNTIME = {"chalice/__init__.py", "chalice/app.py"}


# --- the packaging run ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("package") / "project"
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "dist", "deployments", "__pycache__", "*.pyc", ".pytest_cache",
            ".hypothesis", ".ruff_cache",
        ),
    )
    # No credentials and no region: the script must supply the region and need nothing else.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(BIN=str(BIN), AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    out = project / "dist"
    result = subprocess.run(
        ["bash", "scripts/package.sh", str(out)],
        cwd=project, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"package.sh failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def templates(dist: Path) -> dict[str, dict[str, Any]]:
    return {variant: yaml.safe_load((dist / f"{variant}-template.yml").read_text()) for variant in VARIANTS}


@pytest.fixture(scope="module")
def bundle(dist: Path) -> Iterator[zipfile.ZipFile]:
    with zipfile.ZipFile(dist / "deployment.zip") as archive:
        yield archive


# --- helpers -----------------------------------------------------------------------------------

def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _names_used(node: Any) -> set[str]:
    """Parameters, resources and pseudo parameters a template fragment refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found.update(re.findall(r"\$\{([A-Za-z0-9:]+)", text))
                if not isinstance(value, str):
                    found |= _names_used(value[1])
            else:
                found |= _names_used(value)
    elif isinstance(node, list):
        for item in node:
            found |= _names_used(item)
    return found


def _resource(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][name]["Properties"]


def _swagger(template: dict[str, Any]) -> dict[str, Any]:
    return _resource(template, "RestAPI")["DefinitionBody"]


def _operations(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in _swagger(template)["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _environment(template: dict[str, Any]) -> dict[str, Any]:
    return _resource(template, "APIHandler")["Environment"]["Variables"]


def _policy_documents(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                yield f"{name} inline policy", policy["PolicyDocument"]
        elif resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            yield name, properties["PolicyDocument"]
        elif resource["Type"] == "AWS::Serverless::Function":
            # SAM policy templates would hide their actions from this check.
            assert "Policies" not in properties, f"{name} must use the hand-written role"


PSEUDO_PARAMETERS = {
    "AWS::AccountId": "111122223333", "AWS::Partition": "aws", "AWS::Region": "eu-west-1",
    "AWS::StackName": "stack", "AWS::URLSuffix": "amazonaws.com",
}
NO_VALUE = object()  # AWS::NoValue: the property or list item is left out


def _evaluate(node: Any, template: dict[str, Any], values: dict[str, str]) -> Any:
    """Value of a template fragment for these parameter values, as CloudFormation computes it.

    Handles Ref, Fn::Sub, Fn::Join, Fn::If, Fn::FindInMap, Fn::GetAtt and the condition functions.
    A resource's Ref is "<LogicalId>-id" and its Fn::GetAtt "arn:<LogicalId>.<attribute>"; referring
    to a resource whose condition is false fails, as it fails CloudFormation.
    """
    if isinstance(node, list):
        items = (_evaluate(item, template, values) for item in node)
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (function, argument), = node.items()
        if function == "Ref":
            return _reference(argument, None, template, values)
        if function == "Fn::GetAtt":
            name, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return _reference(name, attribute, template, values)
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            variables = {key: _evaluate(value, template, values) for key, value in variables.items()}
            return _substitute(text, variables, template, values)
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in _evaluate(items, template, values))
        if function == "Fn::If":
            condition, when_true, when_false = argument
            return _evaluate(when_true if _condition(condition, template, values) else when_false, template, values)
        if function == "Fn::FindInMap":
            mapping, key, attribute = (_evaluate(part, template, values) for part in argument)
            return template["Mappings"][mapping][key][attribute]
        if function in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
            return _condition_value(node, template, values)
    evaluated = {key: _evaluate(value, template, values) for key, value in node.items()}
    return {key: value for key, value in evaluated.items() if value is not NO_VALUE}


def _reference(name: str, attribute: str | None, template: dict[str, Any], values: dict[str, str]) -> Any:
    if name == "AWS::NoValue":
        return NO_VALUE
    if name in PSEUDO_PARAMETERS:
        return PSEUDO_PARAMETERS[name]
    if name in template.get("Parameters", {}):
        if template["Parameters"][name]["Type"] == "CommaDelimitedList":
            return values[name].split(",")
        return values[name]
    resource = template["Resources"][name]
    if "Condition" in resource:
        assert _condition(resource["Condition"], template, values), f"{name} does not exist here"
    return f"{name}-id" if attribute is None else f"arn:{name}.{attribute}"


def _substitute(text: str, variables: dict[str, Any], template: dict[str, Any], values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return str(variables[name])
        if "." in name and not name.startswith("AWS::"):
            return str(_reference(*name.split(".", 1), template, values))
        return str(_reference(name, None, template, values))

    return re.sub(r"\$\{([^}]*)\}", replace, text)


def _condition(name: str, template: dict[str, Any], values: dict[str, str]) -> bool:
    return _condition_value(template["Conditions"][name], template, values)


def _condition_value(node: dict[str, Any], template: dict[str, Any], values: dict[str, str]) -> bool:
    (function, argument), = node.items()
    if function == "Condition":
        return _condition(argument, template, values)
    if function == "Fn::Equals":
        left, right = (_evaluate(part, template, values) for part in argument)
        return left == right
    results = [_condition_value(part, template, values) for part in argument]
    return {"Fn::Not": lambda: not results[0], "Fn::And": lambda: all(results), "Fn::Or": lambda: any(results)}[function]()


def _defaults(template: dict[str, Any]) -> dict[str, str]:
    return {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}


def _runtime_distributions() -> set[str]:
    """requirements.txt and everything it pulls in, as installed here."""
    pending = [
        Requirement(line.split("#")[0].strip())
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    found: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        for spec in metadata.distribution(requirement.name).requires or []:
            dependency = Requirement(spec)
            if dependency.marker is None or dependency.marker.evaluate({"extra": ""}):
                pending.append(dependency)
    return found


def _glibc_of(platform: str) -> tuple[int, int] | None:
    """(2, 17) for manylinux2014_x86_64 / manylinux_2_17_x86_64; None if not x86_64 manylinux."""
    match = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_x86_64", platform)
    if match:
        return LEGACY_MANYLINUX[match.group(1)]
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform)
    return (int(match.group(1)), int(match.group(2))) if match else None


# --- artefacts and lint ------------------------------------------------------------------------

def test_package_writes_three_templates_beside_the_zip(dist: Path, templates: dict[str, dict[str, Any]]) -> None:
    assert (dist / "deployment.zip").stat().st_size > 0
    for variant, template in templates.items():
        function = _resource(template, "APIHandler")
        assert function["CodeUri"] == "./deployment.zip", variant
        assert function["Architectures"] == ["x86_64"], variant
        assert re.fullmatch(r"python3\.\d+", function["Runtime"]), variant
        assert template["Transform"] == "AWS::Serverless-2016-10-31", variant


def test_templates_pass_cfn_lint(dist: Path) -> None:
    files = [str(dist / f"{variant}-template.yml") for variant in VARIANTS]
    result = subprocess.run([str(BIN / "cfn-lint"), *files], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


@pytest.fixture
def sam_transform(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The SAM transform CloudFormation runs on a template (with the parameters' defaults)."""
    pytest.importorskip("samtranslator", reason="aws-sam-translator is not installed")
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the translator builds ARNs with it

    def transform(template: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy(template)
        # What `aws cloudformation package` does with the local CodeUri.
        template["Resources"]["APIHandler"]["Properties"]["CodeUri"] = "s3://bucket/deployment.zip"
        return Translator(managed_policy_map={}, sam_parser=Parser()).translate(
            sam_template=template, parameter_values=_defaults(template)
        )

    return transform


def test_sam_transform_keeps_the_wiring(
    templates: dict[str, dict[str, Any]], tmp_path: Path, sam_transform: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    """Runs the SAM transform CloudFormation runs, and lints its output."""
    translated_files = []
    for variant in VARIANTS:
        template = templates[variant]
        output = sam_transform(template)
        resources = output["Resources"]
        stages = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"]
        assert len(stages) == 1, f"{variant}: SAM made {len(stages)} stages"
        assert stages[0]["MethodSettings"] == _resource(template, "RestAPI")["MethodSettings"], variant
        assert stages[0]["StageName"] == _resource(template, "RestAPI")["StageName"], variant
        body = resources["RestAPI"]["Properties"]["Body"]
        assert "*/*" in body["x-amazon-apigateway-binary-media-types"], variant
        assert body["paths"] == _swagger(template)["paths"], variant
        assert body[GATEWAY_RESPONSES] == _swagger(template)[GATEWAY_RESPONSES], variant
        if variant in PARAMETERISED:
            # What SAM makes of RestAPI exists only when the REST API is chosen (ApiType).
            made = {r["Type"]: r.get("Condition") for r in resources.values()
                    if r["Type"] in ("AWS::ApiGateway::RestApi", "AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage")}
            assert made == dict.fromkeys(made, "IsRestApi") and len(made) == 3, (variant, made)
        function = resources["APIHandler"]["Properties"]
        assert function["Timeout"] == _resource(template, "APIHandler")["Timeout"], variant
        assert function["Environment"] == _resource(template, "APIHandler")["Environment"], variant
        path = tmp_path / f"{variant}-cfn.yml"
        # The translator reuses objects (one method body for many routes); CloudFormation takes
        # no YAML aliases, so write each occurrence out.
        path.write_text(yaml.dump(output, Dumper=_NoAliases))
        translated_files.append(str(path))
    result = subprocess.run(
        [str(BIN / "cfn-lint"), *translated_files], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- parameters and their wiring ---------------------------------------------------------------

def test_simple_template_needs_no_parameter(templates: dict[str, dict[str, Any]]) -> None:
    assert all("Default" in spec for spec in templates["simple"].get("Parameters", {}).values())
    outputs = templates["simple"]["Outputs"]
    assert REQUIRED_OUTPUTS <= set(outputs)
    stage = _resource(templates["simple"], "RestAPI")["StageName"]
    for route in ROUTES:
        assert outputs[f"Invoke{route[1:].title()}URL"]["Value"] == {"Fn::Sub": f"{URL_PREFIX}{stage}{route}"}


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_advanced_parameters_have_defaults_descriptions_and_uses(
    templates: dict[str, dict[str, Any]], variant: str
) -> None:
    template = templates[variant]
    parameters = template["Parameters"]
    assert ORIGINAL_PARAMETERS <= set(parameters)
    # A parameter that chooses resources (ApiType, the domain's) is wired through a condition.
    used = _names_used(template["Resources"]) | _names_used(template["Outputs"]) | _names_used(template["Conditions"])
    for name, spec in parameters.items():
        assert "Default" in spec and spec.get("Description"), name
        assert name in used, f"parameter {name} is not wired into any resource or output"
        if "AllowedValues" in spec:
            assert spec["Default"] in spec["AllowedValues"], name


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_function_parameters_are_wired(templates: dict[str, dict[str, Any]], variant: str) -> None:
    template = templates[variant]
    function = _resource(template, "APIHandler")
    assert function["FunctionName"] == {"Ref": "LambdaFunctionName"}
    assert function["MemorySize"] == {"Ref": "MemorySize"}
    assert function["Timeout"] == {"Fn::FindInMap": ["Timeouts", {"Ref": "TimeoutInMillis"}, "LambdaTimeoutSeconds"]}
    assert _resource(template, "APIHandlerLogGroup")["LogGroupName"] == {
        "Fn::Sub": "/aws/lambda/${LambdaFunctionName}"
    }
    assert template["Resources"]["APIHandler"]["DependsOn"] == ["APIHandlerLogGroup"]
    environment = _environment(template)
    assert environment["DATABASE_LABEL"] == {"Ref": "PrometheusDatabaseLabel"}
    assert environment["TABLE_LABEL"] == {"Ref": "PrometheusTableLabel"}
    assert environment["WRITE_BUDGET_SECONDS"] == {
        "Fn::FindInMap": ["Timeouts", {"Ref": "TimeoutInMillis"}, "WriteBudgetSeconds"]
    }


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_timeout_in_millis_converts_to_whole_seconds_for_every_allowed_value(
    templates: dict[str, dict[str, Any]], variant: str
) -> None:
    template = templates[variant]
    allowed = template["Parameters"]["TimeoutInMillis"]["AllowedValues"]
    mapping = template["Mappings"]["Timeouts"]
    assert set(mapping) == set(allowed)
    for millis in allowed:
        seconds = int(mapping[millis]["LambdaTimeoutSeconds"])
        budget = float(mapping[millis]["WriteBudgetSeconds"])
        assert seconds * 1000 == int(millis)
        # API Gateway gives up after 29 s; the write budget leaves the function time to answer.
        assert seconds <= 29 and budget <= seconds - 3, millis


@pytest.mark.parametrize("variant", VARIANTS)
def test_environment_is_valid_for_the_connector(templates: dict[str, dict[str, Any]], variant: str) -> None:
    """Every variable is one chalicelib.config reads, and the values load for every allowed timeout."""
    template = templates[variant]
    config_source = (ROOT / "chalicelib" / "config.py").read_text()
    environment = _environment(template)
    for name in environment:
        assert f'"{name}"' in config_source, f"{name} is not read by chalicelib/config.py"
    values = _defaults(template)
    timeouts = template.get("Parameters", {}).get("TimeoutInMillis", {}).get("AllowedValues", [None])
    for millis in timeouts:
        if millis is not None:
            values["TimeoutInMillis"] = millis
        resolved = {name: str(_evaluate(value, template, values)) for name, value in environment.items()}
        try:
            settings = load_settings(resolved)
        except ConfigError as error:
            pytest.fail(f"{variant} with TimeoutInMillis={millis}: {error}")
        timeout = int(_evaluate(_resource(template, "APIHandler")["Timeout"], template, values))
        assert settings.write_budget_seconds < timeout
        assert settings.auth_mode == ("iam" if variant.endswith("-iam") else "basic")


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_stage_and_throttling_parameters_are_wired(templates: dict[str, dict[str, Any]], variant: str) -> None:
    template = templates[variant]
    api = _resource(template, "RestAPI")
    assert api["StageName"] == {"Ref": "APIGatewayStageName"}
    settings = {(s["ResourcePath"], s["HttpMethod"]): s for s in api["MethodSettings"]}
    for route, kind in (("/write", "Write"), ("/read", "Read")):
        setting = settings[("/~1" + route[1:], "POST")]
        assert setting["ThrottlingBurstLimit"] == {"Ref": f"{kind}ThrottlingBurstLimit"}
        assert setting["ThrottlingRateLimit"] == {"Ref": f"{kind}ThrottlingRateLimit"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_method_settings_name_existing_routes(templates: dict[str, dict[str, Any]], variant: str) -> None:
    """API Gateway refuses a stage whose method settings name a route the API lacks."""
    template = templates[variant]
    operations = {(path, method.upper()) for path, method, _ in _operations(template)}
    assert {(path, method.upper()) for path, method in ROUTES.items()} <= operations
    for setting in _resource(template, "RestAPI")["MethodSettings"]:
        path = setting["ResourcePath"].replace("~1", "/").replace("//", "/")
        assert (path, setting["HttpMethod"]) in operations, setting


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_iam_name_parameters_are_wired(templates: dict[str, dict[str, Any]], variant: str) -> None:
    template = templates[variant]
    role = _resource(template, "ApiHandlerRole")
    assert role["RoleName"] == {"Ref": "RoleName"}
    assert [policy["PolicyName"] for policy in role["Policies"]] == [{"Ref": "ExecutionPolicyName"}]
    assert _resource(template, "TimestreamPolicy")["ManagedPolicyName"] == {"Ref": "TimestreamPolicyName"}


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_outputs_give_the_urls_and_labels(templates: dict[str, dict[str, Any]], variant: str) -> None:
    template = templates[variant]
    outputs = template["Outputs"]
    assert REQUIRED_OUTPUTS <= set(outputs)
    stage = "prod"
    for api_type, domain, base in (
        ("REST", "", f"https://RestAPI-id.execute-api.eu-west-1.amazonaws.com/{stage}/"),
        ("HTTP", "", f"https://HttpApi-id.execute-api.eu-west-1.amazonaws.com/{stage}/"),
        ("REST", DOMAIN, f"https://{DOMAIN}/"),
        ("HTTP", DOMAIN, f"https://{DOMAIN}/"),
    ):
        values = _defaults(template) | {"ApiType": api_type, "APIGatewayStageName": stage}
        if domain:
            values |= {"CustomDomainName": domain, "CertificateArn": CERTIFICATE}
        urls = {name: _evaluate(outputs[name]["Value"], template, values)
                for name in ("InvokeWriteURL", "InvokeReadURL", "EndpointURL")}
        assert urls == {"InvokeWriteURL": base + "write", "InvokeReadURL": base + "read", "EndpointURL": base}, (
            api_type, domain)
    assert outputs["PrometheusDatabaseLabel"]["Value"] == {"Ref": "PrometheusDatabaseLabel"}
    assert outputs["PrometheusTableLabel"]["Value"] == {"Ref": "PrometheusTableLabel"}


# --- API: binary bodies and authorization -----------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_api_passes_protobuf_bytes_both_ways(templates: dict[str, dict[str, Any]], variant: str) -> None:
    template = templates[variant]
    # "*/*": API Gateway decodes base64 responses without an Accept header (Prometheus remote
    # read sends none); chalice only base64-encodes the types in app.api.binary_types, so its
    # text responses stay text.
    assert set(_swagger(template)["x-amazon-apigateway-binary-media-types"]) == {"application/x-protobuf", "*/*"}
    for path, method in ROUTES.items():
        operation = _swagger(template)["paths"][path][method]
        # /write takes any type to the function, which negotiates remote write 1.0 or 2.0 itself.
        assert operation["consumes"] == (["*/*"] if path == "/write" else ["application/x-protobuf"]), path
        integration = operation["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy" and integration["contentHandling"] == "CONVERT_TO_TEXT"
    assert "MinimumCompressionSize" not in _resource(template, "RestAPI")  # bodies pass untouched


@pytest.mark.parametrize("variant", VARIANTS)
def test_other_methods_on_write_and_read_reach_the_function_for_its_405(
    templates: dict[str, dict[str, Any]], variant: str
) -> None:
    """A method without an operation is answered by API Gateway itself (MISSING_AUTHENTICATION_TOKEN,
    a 404 here): the deployed answer to GET /write would differ from chalice local's 405."""
    paths = _swagger(templates[variant])["paths"]
    for path in ROUTES:
        for method in ("get", "put", "patch", "delete", "head"):
            integration = paths[path].get(method, {}).get("x-amazon-apigateway-integration", {})
            assert integration.get("type") == "aws_proxy", f"{method.upper()} {path} does not reach the function"


@pytest.mark.parametrize("variant", ("simple", "advanced"))
def test_basic_variants_leave_authorization_to_the_function(
    templates: dict[str, dict[str, Any]], variant: str
) -> None:
    template = templates[variant]
    assert _environment(template)["AUTH_MODE"] == "basic"
    assert "securityDefinitions" not in _swagger(template)
    assert all("security" not in operation for _, _, operation in _operations(template))
    # The function signs with the caller's keys: its role gets no Timestream permission, and the
    # Timestream policy is left for the user whose keys Prometheus sends.
    policy = _resource(template, "TimestreamPolicy")
    assert not {"Roles", "Users", "Groups"} & set(policy)
    role_actions = {
        action
        for policy in _resource(template, "ApiHandlerRole")["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        for action in _as_list(statement["Action"])
    }
    assert role_actions == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_iam_variant_signs_every_route_and_writes_with_the_role(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["advanced-iam"]
    assert _environment(template)["AUTH_MODE"] == "iam"
    assert _swagger(template)["securityDefinitions"] == {
        "sigv4": {"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"}
    }
    operations = list(_operations(template))
    assert len(operations) >= len(ROUTES)
    for path, method, operation in operations:
        assert operation.get("security") == [{"sigv4": []}], f"{method.upper()} {path} is not signed"
        assert "x-amazon-apigateway-integration" in operation, f"{method.upper()} {path} has no integration"
    assert _resource(template, "TimestreamPolicy")["Roles"] == [{"Ref": "ApiHandlerRole"}]
    invoke = _resource(template, "InvokePolicy")["PolicyDocument"]["Statement"]
    assert [statement["Action"] for statement in invoke] == [["execute-api:Invoke"]]
    resources = sorted(_evaluate(item, template, _defaults(template)) for item in invoke[0]["Resource"])
    assert resources == sorted(
        f"arn:aws:execute-api:eu-west-1:111122223333:RestAPI-id/prod/{method.upper()}{path}"
        for path, method in ROUTES.items()
    )
    assert "InvokePolicyArn" in template["Outputs"]


# --- API Gateway's own answers -----------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_gateway_answers_are_fixed_lines_in_the_api_definition(
    templates: dict[str, dict[str, Any]], variant: str
) -> None:
    responses = _swagger(templates[variant])[GATEWAY_RESPONSES]
    assert set(GATEWAY_RESPONSE_STATUS) <= set(responses), sorted(set(GATEWAY_RESPONSE_STATUS) - set(responses))
    expected_status = GATEWAY_RESPONSE_STATUS | (IAM_GATEWAY_RESPONSE_STATUS if variant.endswith("-iam") else {})
    for response_type, response in responses.items():
        assert response.get("statusCode") == expected_status.get(response_type), (variant, response_type)
        # No header of the request may be copied into the answer either.
        assert set(response) <= {"statusCode", "responseTemplates"}, (variant, response_type)
        assert list(response["responseTemplates"]) == ["application/json"], (variant, response_type)
        body = response["responseTemplates"]["application/json"]
        # "$" starts every variable API Gateway substitutes ($context..., $input..., $stageVariables...).
        assert "$" not in body and "\n" not in body, (variant, response_type, body)
        message = json.loads(body)["message"]
        assert isinstance(message, str) and 20 <= len(message) <= 250, (variant, response_type)
        if response_type in ROUTE_HINTS:
            assert "/write" in message and "/read" in message, (variant, response_type, message)
    assert "retries" in responses["THROTTLED"]["responseTemplates"]["application/json"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_gateway_answers_belong_to_the_api_and_are_deployed_with_it(
    templates: dict[str, dict[str, Any]], variant: str
) -> None:
    """In the RestAPI's own definition: a separate AWS::ApiGateway::GatewayResponse would be reset
    by SAM's next import of the definition (mode overwrite) and would not redeploy the stage."""
    template = templates[variant]
    assert template["Resources"]["RestAPI"]["Type"] == "AWS::Serverless::Api"
    assert GATEWAY_RESPONSES in _swagger(template)
    assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::GatewayResponse"]


def test_changing_a_gateway_answer_redeploys_the_stage(
    templates: dict[str, dict[str, Any]], sam_transform: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    def deployment(template: dict[str, Any]) -> str:
        resources = sam_transform(template)["Resources"]
        (name,) = [name for name, r in resources.items() if r["Type"] == "AWS::ApiGateway::Deployment"]
        (stage,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"]
        assert stage["DeploymentId"] == {"Ref": name}
        return name

    changed = copy.deepcopy(templates["advanced"])
    _swagger(changed)[GATEWAY_RESPONSES]["DEFAULT_4XX"]["responseTemplates"]["application/json"] = (
        '{"message": "another fixed line"}'
    )
    assert deployment(changed) != deployment(templates["advanced"])


def test_no_template_quotes_the_request(dist: Path) -> None:
    """No template, source or built, uses the variables through which API Gateway quotes requests."""
    files = sorted((ROOT / "templates").glob("*.yml")) + sorted(dist.glob("*.yml"))
    assert len(files) >= 6
    for path in files:
        text = path.read_text()
        assert "$context.error.message" not in text, path  # also catches $context.error.messageString
        assert "$input." not in text and "$method.request" not in text, path


# --- IAM policies ------------------------------------------------------------------------------

def _chalice_config() -> dict[str, Any]:
    return json.loads((ROOT / ".chalice" / "config.json").read_text())


def _all_policies(templates: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for variant, template in templates.items():
        for name, document in _policy_documents(template):
            yield f"{variant}: {name}", document
    for stage, settings in _chalice_config()["stages"].items():
        if "iam_policy_file" in settings:
            path = ROOT / ".chalice" / settings["iam_policy_file"]
            yield f"chalice stage {stage}: {path.name}", json.loads(path.read_text())


def test_policies_grant_no_wildcard_action(templates: dict[str, dict[str, Any]]) -> None:
    checked = 0
    for where, document in _all_policies(templates):
        for statement in document["Statement"]:
            checked += 1
            assert statement["Effect"] == "Allow", where
            assert not {"NotAction", "NotResource", "NotPrincipal"} & set(statement), where
            actions = _as_list(statement["Action"])
            assert all("*" not in action and "?" not in action for action in actions), (where, actions)
            assert set(actions) <= ALLOWED_ACTIONS, (where, actions)
            resources = _as_list(statement["Resource"])
            if "*" in resources:  # only endpoint discovery has no resource to scope it to
                assert actions == ["timestream:DescribeEndpoints"] and resources == ["*"], where
            if any(action.startswith("logs:") for action in actions):
                text = json.dumps(resources)
                assert "APIHandlerLogGroup" in text or "/aws/lambda/prometheus-timestream-" in text, where
            if "timestream:WriteRecords" in actions:
                assert "/table/" in json.dumps(resources), where
    assert checked >= 10


def test_roles_trust_only_lambda(templates: dict[str, dict[str, Any]]) -> None:
    for variant, template in templates.items():
        roles = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
        assert len(roles) == 1, variant
        principals = [s["Principal"] for s in roles[0]["AssumeRolePolicyDocument"]["Statement"]]
        assert principals == [{"Service": "lambda.amazonaws.com"}], variant


def test_chalice_config_stages() -> None:
    config = _chalice_config()
    assert config["app_name"] == "prometheus-timestream"
    assert config["autogen_policy"] is False
    stages = config["stages"]
    # tests and `make run` pass settings through the process environment
    assert "environment_variables" not in stages["local"]
    for name in ("dev", "prod"):
        stage = stages[name]
        assert (ROOT / ".chalice" / stage["iam_policy_file"]).is_file(), name
        policy = (ROOT / ".chalice" / stage["iam_policy_file"]).read_text()
        assert f"/aws/lambda/prometheus-timestream-{name}" in policy, name
        settings = load_settings(stage["environment_variables"])
        assert settings.write_budget_seconds + 3 <= stage["lambda_timeout"] <= 29, name


# --- metrics, alarms and dashboard ---------------------------------------------------------------

def test_metrics_namespace_is_set_in_every_variant(templates: dict[str, dict[str, Any]]) -> None:
    assert _environment(templates["simple"])["METRICS_NAMESPACE"] == METRICS_NAMESPACE
    for variant in PARAMETERISED:
        template = templates[variant]
        assert template["Parameters"]["MetricsNamespace"]["Default"] == METRICS_NAMESPACE
        assert _environment(template)["METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
        pattern = template["Parameters"]["MetricsNamespace"]["AllowedPattern"]
        assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "Team/Prometheus-1")
        assert not re.fullmatch(pattern, "AWS/Lambda") and not re.fullmatch(pattern, 'a"b')


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_api_is_named_after_the_function_for_its_metrics(templates: dict[str, dict[str, Any]], variant: str) -> None:
    """AWS/ApiGateway metrics name the API by its name only: a name per stack keeps stacks apart."""
    template = templates[variant]
    assert _resource(template, "RestAPI")["Name"] == {"Ref": "LambdaFunctionName"}
    assert _swagger(template)["info"]["title"] == {"Ref": "LambdaFunctionName"}


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_alarms_watch_the_right_metrics(templates: dict[str, dict[str, Any]], variant: str) -> None:
    template = templates[variant]
    resources = template["Resources"]
    alarms = {name for name, resource in resources.items() if resource["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms == set(ALARMS) | {"HttpApiServerErrorRateAlarm"}
    for name, (namespace, metric, dimensions) in ALARMS.items():
        alarm = resources[name]["Properties"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]) == (namespace, metric, dimensions), name
        assert alarm["TreatMissingData"] == "notBreaching", name  # no traffic is not an error
        assert alarm["ComparisonOperator"].startswith("GreaterThan"), name
        expected_condition = {"Ref": "MetricsNamespace"} == namespace and "HasMetrics" or (
            "IsRestApi" if namespace == "AWS/ApiGateway" else None)
        assert resources[name].get("Condition") == expected_condition, name
        assert alarm["AlarmName"]["Fn::Sub"].startswith("${LambdaFunctionName}-"), name
    error_rate = resources["ApiServerErrorRateAlarm"]["Properties"]
    assert error_rate["Statistic"] == "Average" and 0 < error_rate["Threshold"] < 1  # 5XXError is 0 or 1 per request
    assert _resource(template, "RestAPI")["Name"] == error_rate["Dimensions"][0]["Value"]
    assert _resource(template, "RestAPI")["StageName"] == error_rate["Dimensions"][1]["Value"]


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_duration_alarm_is_80_percent_of_the_timeout(templates: dict[str, dict[str, Any]], variant: str) -> None:
    template = templates[variant]
    alarm = _resource(template, "FunctionDurationAlarm")
    assert alarm["Statistic"] == "Maximum" or alarm.get("ExtendedStatistic") == "p99"
    values = _defaults(template)
    for millis in template["Parameters"]["TimeoutInMillis"]["AllowedValues"]:
        values["TimeoutInMillis"] = millis
        threshold = float(_evaluate(alarm["Threshold"], template, values))
        timeout_ms = 1000 * int(_evaluate(_resource(template, "APIHandler")["Timeout"], template, values))
        assert threshold == 0.8 * int(millis) == 0.8 * timeout_ms, millis


@pytest.mark.parametrize("variant", PARAMETERISED)
@pytest.mark.parametrize("topic", ("", TOPIC))
def test_alarms_notify_the_topic_only_when_given(templates: dict[str, dict[str, Any]], variant: str, topic: str) -> None:
    template = templates[variant]
    parameter = template["Parameters"]["AlarmTopicArn"]
    assert parameter["Default"] == "" and re.fullmatch(parameter["AllowedPattern"], topic)
    values = _defaults(template) | {"AlarmTopicArn": topic}
    for name in (*ALARMS, "HttpApiServerErrorRateAlarm"):
        api_type = "HTTP" if name.startswith("Http") else "REST"  # each API's alarm exists with it only
        alarm = _evaluate(_resource(template, name), template, values | {"ApiType": api_type})
        for actions in ("AlarmActions", "OKActions"):
            assert alarm.get(actions) == ([topic] if topic else None), (name, actions)


def _dashboard(template: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    body = _evaluate(_resource(template, "Dashboard")["DashboardBody"], template, values)
    return json.loads(body)


def _graphed(dashboard: dict[str, Any]) -> tuple[set[tuple[Any, ...]], list[str]]:
    """(namespace, metric, dimensions...) of each graphed metric, and each metric math expression."""
    metrics, expressions = set(), []
    for widget in dashboard["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                expressions.append(row[0]["expression"])
            else:
                metrics.add(tuple(item for item in row if not isinstance(item, dict)))
    return metrics, expressions


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_dashboard_shows_every_metric(templates: dict[str, dict[str, Any]], variant: str) -> None:
    template = templates[variant]
    values = _defaults(template)
    dashboard = _dashboard(template, values)
    function = _evaluate(FUNCTION, template, values)
    api = ("ApiName", values["LambdaFunctionName"], "Stage", values["APIGatewayStageName"])
    metrics, expressions = _graphed(dashboard)
    for metric in WRITE_METRICS + READ_METRICS:
        assert (METRICS_NAMESPACE, metric, "Function", function) in metrics, metric
    for metric in BY_REASON:
        (search,) = [e for e in expressions if f'MetricName="{metric}"' in e]
        assert search.startswith(f"SEARCH('{{\"{METRICS_NAMESPACE}\",Function,Reason}} "), search
        assert f'Function="{function}"' in search, search
    for metric in ("Count", "4XXError", "5XXError", "Latency", "IntegrationLatency"):
        assert ("AWS/ApiGateway", metric, *api) in metrics, metric
    for metric in ("Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"):
        assert ("AWS/Lambda", metric, "FunctionName", function) in metrics, metric
    shown_alarms = {alarm for w in dashboard["widgets"] if w["type"] == "alarm" for alarm in w["properties"]["alarms"]}
    assert shown_alarms == {f"arn:{name}.Arn" for name in ALARMS}
    for widget in dashboard["widgets"]:
        assert 1 <= widget["width"] <= 24 and widget["height"] >= 1, widget
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == PSEUDO_PARAMETERS["AWS::Region"], widget


@pytest.mark.parametrize("variant", PARAMETERISED)
@pytest.mark.parametrize("api_type", ("REST", "HTTP"))
def test_dashboard_without_metrics_namespace_shows_aws_metrics_only(
    templates: dict[str, dict[str, Any]], variant: str, api_type: str
) -> None:
    template = templates[variant]
    values = _defaults(template) | {"MetricsNamespace": "", "ApiType": api_type}
    dashboard = _dashboard(template, values)  # fails if it names an alarm that does not exist
    metrics, expressions = _graphed(dashboard)
    assert metrics and {namespace for namespace, *_ in metrics} == {"AWS/ApiGateway", "AWS/Lambda"}
    assert not expressions


# --- the front door: every combination of API type, custom domain, mutual TLS and auth ----------

def _resolve(node: Any, template: dict[str, Any], values: dict[str, str]) -> Any:
    """`node` with every Fn::If decided for these values (AWS::NoValue branches left out); every
    other function is kept for CloudFormation."""
    if isinstance(node, list):
        items = (_resolve(item, template, values) for item in node)
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::If"}:
        condition, when_true, when_false = node["Fn::If"]
        return _resolve(when_true if _condition(condition, template, values) else when_false, template, values)
    if node == {"Ref": "AWS::NoValue"}:
        return NO_VALUE
    resolved = {key: _resolve(value, template, values) for key, value in node.items()}
    return {key: value for key, value in resolved.items() if value is not NO_VALUE}


def _concrete(template: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The template CloudFormation deploys for these parameter values: the resources and outputs
    whose condition holds, conditions decided, the values as the parameters' defaults."""
    concrete = copy.deepcopy(template)
    for section in ("Resources", "Outputs"):
        kept = {}
        for name, item in template[section].items():
            if "Condition" in item and not _condition(item["Condition"], template, values):
                continue
            kept[name] = {key: _resolve(value, template, values) for key, value in item.items() if key != "Condition"}
        concrete[section] = kept
    del concrete["Conditions"]
    # A parameter only a decided condition read (TimestreamTableArns, ApiType...) is gone with it.
    used = _names_used(concrete["Resources"]) | _names_used(concrete["Outputs"]) | _names_used(concrete["Rules"])
    concrete["Parameters"] = {name: spec for name, spec in concrete["Parameters"].items() if name in used}
    for group in concrete["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]:
        group["Parameters"] = [name for name in group["Parameters"] if name in used]
    for name, value in values.items():
        if name in concrete["Parameters"] and value != _defaults(template)[name]:
            concrete["Parameters"][name]["Default"] = value
    return concrete


def _combination_values(template: dict[str, Any], api_type: str, mode: str) -> dict[str, str]:
    return _defaults(template) | {"ApiType": api_type} | DOMAIN_MODES[mode]


@pytest.fixture(scope="module")
def combinations(templates: dict[str, dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (variant, api_type, mode): _concrete(templates[variant], _combination_values(templates[variant], api_type, mode))
        for variant, api_type, mode in COMBINATIONS
    }


def test_every_front_door_combination_passes_cfn_lint_and_the_sam_transform(
    combinations: dict[tuple[str, str, str], dict[str, Any]], tmp_path: Path,
    sam_transform: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """REST/HTTP x no domain/domain/domain with mTLS x basic/IAM, each as CloudFormation would
    deploy it: linted before and after the SAM transform, in one cfn-lint run."""
    files = []
    for (variant, api_type, mode), template in combinations.items():
        name = slug_of(variant, api_type, mode)
        (tmp_path / f"{name}.yml").write_text(yaml.dump(template, Dumper=_NoAliases))
        output = sam_transform(template)
        types = [resource["Type"] for resource in output["Resources"].values()]
        assert ("AWS::ApiGateway::RestApi" in types) == (api_type == "REST"), name
        assert ("AWS::ApiGatewayV2::Api" in types) == (api_type == "HTTP"), name
        if api_type == "REST":
            (rest_api,) = [r["Properties"] for r in output["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
            # SAM writes DisableExecuteApiEndpoint as the OpenAPI extension API Gateway imports.
            endpoint = rest_api["Body"]["x-amazon-apigateway-endpoint-configuration"]
            assert endpoint["disableExecuteApiEndpoint"] is (mode != "no domain"), name
            if mode != "no domain":
                # SAM's RestAPI.Stage reference became the stage it made.
                (stage_name,) = [n for n, r in output["Resources"].items() if r["Type"] == "AWS::ApiGateway::Stage"]
                mapping = output["Resources"]["RestApiBasePathMapping"]["Properties"]
                assert mapping["Stage"] == {"Ref": stage_name}, name
        (tmp_path / f"{name}-cfn.yml").write_text(yaml.dump(output, Dumper=_NoAliases))
        files += [str(tmp_path / f"{name}.yml"), str(tmp_path / f"{name}-cfn.yml")]
    assert len(files) == 2 * 12
    result = subprocess.run([str(BIN / "cfn-lint"), *files], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def slug_of(*parts: str) -> str:
    return "-".join(re.sub(r"[^a-z0-9]+", "_", part.lower()) for part in parts)


@pytest.mark.parametrize(("variant", "api_type", "mode"), COMBINATIONS)
def test_exactly_one_api_serves_and_a_domain_switches_the_execute_api_endpoint_off(
    combinations: dict[tuple[str, str, str], dict[str, Any]], variant: str, api_type: str, mode: str
) -> None:
    template = combinations[(variant, api_type, mode)]
    resources = template["Resources"]
    rest = {"RestAPI", "APIHandlerInvokePermission", "ApiServerErrorRateAlarm"}
    http = {"HttpApi", "HttpApiIntegration", "HttpApiStage", "HttpApiInvokePermission", "HttpApiServerErrorRateAlarm"}
    present, absent = (rest, http) if api_type == "REST" else (http, rest)
    assert present <= set(resources) and not absent & set(resources)
    api = resources["RestAPI" if api_type == "REST" else "HttpApi"]["Properties"]
    has_domain = mode != "no domain"
    # Otherwise any client could go around the custom domain (and its mutual TLS).
    assert api["DisableExecuteApiEndpoint"] is has_domain
    domains = [r for r in resources.values() if r["Type"] in ("AWS::ApiGateway::DomainName", "AWS::ApiGatewayV2::DomainName")]
    assert len(domains) == has_domain
    urls = {name: _evaluate(template["Outputs"][name]["Value"], template, _defaults(template))
            for name in ("InvokeWriteURL", "InvokeReadURL")}
    if not has_domain:
        assert "CustomDomainTarget" not in template["Outputs"]
        api_id = "RestAPI-id" if api_type == "REST" else "HttpApi-id"
        assert urls["InvokeWriteURL"] == f"https://{api_id}.execute-api.eu-west-1.amazonaws.com/prod/write"
        return
    assert urls == {"InvokeWriteURL": f"https://{DOMAIN}/write", "InvokeReadURL": f"https://{DOMAIN}/read"}
    (domain,) = domains
    properties = domain["Properties"]
    assert properties["DomainName"] == {"Ref": "CustomDomainName"}
    if api_type == "REST":
        assert domain["Type"] == "AWS::ApiGateway::DomainName"
        assert properties["SecurityPolicy"] == "TLS_1_2"
        assert properties["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
        assert properties["RegionalCertificateArn"] == {"Ref": "CertificateArn"}
        mapping = resources["RestApiBasePathMapping"]["Properties"]
        assert (mapping["RestApiId"], mapping["DomainName"]) == ({"Ref": "RestAPI"}, {"Ref": "RestApiDomainName"})
        assert "BasePath" not in mapping  # the stage at the domain's root: https://<domain>/write
    else:
        (configuration,) = properties["DomainNameConfigurations"]
        assert configuration == {"CertificateArn": {"Ref": "CertificateArn"}, "EndpointType": "REGIONAL",
                                 "SecurityPolicy": "TLS_1_2"}
        mapping = resources["HttpApiMapping"]["Properties"]
        assert mapping == {"ApiId": {"Ref": "HttpApi"}, "DomainName": {"Ref": "HttpApiDomainName"},
                           "Stage": {"Ref": "HttpApiStage"}}
    if mode == "domain with mTLS":
        assert properties["MutualTlsAuthentication"] == {
            "TruststoreUri": {"Ref": "TruststoreUri"}, "TruststoreVersion": {"Ref": "TruststoreVersion"}}
    else:
        assert "MutualTlsAuthentication" not in properties
    records = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Route53::RecordSet"]
    if "HostedZoneId" in DOMAIN_MODES[mode]:
        (record,) = records
        domain_name = "RestApiDomainName" if api_type == "REST" else "HttpApiDomainName"
        assert record["AliasTarget"]["DNSName"] == {"Fn::GetAtt": [domain_name, "RegionalDomainName"]}
        assert record["AliasTarget"]["HostedZoneId"] == {"Fn::GetAtt": [domain_name, "RegionalHostedZoneId"]}
        assert (record["Name"], record["Type"]) == ({"Ref": "CustomDomainName"}, "A")
    else:
        assert not records


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_the_domain_parameters_are_checked_together(templates: dict[str, dict[str, Any]], variant: str) -> None:
    """The template's rules: what CloudFormation refuses before creating anything."""
    template = templates[variant]

    def accepted(**values: str) -> bool:
        merged = _defaults(template) | values
        return all(
            _condition_value(assertion["Assert"], template, merged)
            for rule in template["Rules"].values() for assertion in rule["Assertions"]
        )

    for mode in DOMAIN_MODES.values():
        assert accepted(**mode), mode
    assert not accepted(CustomDomainName=DOMAIN)  # no certificate
    assert not accepted(CertificateArn=CERTIFICATE)  # a certificate for nothing
    assert not accepted(TruststoreUri=TRUSTSTORE)  # mutual TLS needs the custom domain
    assert not accepted(HostedZoneId="Z0123456789ABCDEFGHIJ")
    assert not accepted(CustomDomainName=DOMAIN, CertificateArn=CERTIFICATE, TruststoreVersion="v1")
    parameters = template["Parameters"]
    assert parameters["ApiType"]["Default"] == "REST" and parameters["ApiType"]["AllowedValues"] == ["REST", "HTTP"]
    for name, good, bad in (
        ("CustomDomainName", DOMAIN, "https://metrics.example.com/"),
        ("CertificateArn", CERTIFICATE, "arn:aws:iam::111122223333:server-certificate/x"),
        ("TruststoreUri", TRUSTSTORE, "https://example-truststores.s3.amazonaws.com/clients.pem"),
        ("HostedZoneId", "Z0123456789ABCDEFGHIJ", "example.com"),
    ):
        pattern = parameters[name]["AllowedPattern"]
        assert re.fullmatch(pattern, "") and re.fullmatch(pattern, good) and not re.fullmatch(pattern, bad), name


def _app_routes() -> set[tuple[str, str]]:
    sys.path.insert(0, str(ROOT))
    from app import app  # the routes package.sh reads

    return {(method, path) for path, methods in app.routes.items() for method in methods}


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_http_api_has_every_route_of_the_app_behind_a_payload_format_1_0_integration(
    combinations: dict[tuple[str, str, str], dict[str, Any]], variant: str
) -> None:
    template = combinations[(variant, "HTTP", "no domain")]
    resources = template["Resources"]
    integration = resources["HttpApiIntegration"]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    # 1.0: Chalice's handler reads requestContext.resourcePath, which a 2.0 event lacks.
    assert integration["PayloadFormatVersion"] == "1.0"
    assert integration["IntegrationUri"] == {"Fn::GetAtt": ["APIHandler", "Arn"]}
    assert integration["TimeoutInMillis"] <= 30000  # an HTTP API's most
    routes = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::ApiGatewayV2::Route"}
    keys = {tuple(route["RouteKey"].split(" ", 1)) for route in routes.values()}
    assert keys == _app_routes()
    assert ("POST", "/write") in keys and ("POST", "/read") in keys
    for name, route in routes.items():
        assert route["Target"] == {"Fn::Sub": "integrations/${HttpApiIntegration}"}, name
        assert route["ApiId"] == {"Ref": "HttpApi"}, name
        # The IAM variant's routes all require a SigV4 signature; the basic ones leave it to the app.
        assert route["AuthorizationType"] == ("AWS_IAM" if variant.endswith("-iam") else "NONE"), name
    stage = resources["HttpApiStage"]
    assert sorted(stage["DependsOn"]) == sorted(routes)  # route settings need their routes
    assert stage["Properties"]["StageName"] == {"Ref": "APIGatewayStageName"}
    assert stage["Properties"]["AutoDeploy"] is True
    settings = stage["Properties"]["RouteSettings"]
    assert set(settings) <= {route["RouteKey"] for route in routes.values()}
    for key, kind in (("POST /write", "Write"), ("POST /read", "Read")):
        assert settings[key] == {"ThrottlingBurstLimit": {"Ref": f"{kind}ThrottlingBurstLimit"},
                                 "ThrottlingRateLimit": {"Ref": f"{kind}ThrottlingRateLimit"}}, key
    permission = resources["HttpApiInvokePermission"]["Properties"]
    assert permission["SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/*"}
    if variant.endswith("-iam"):
        invoke = resources["InvokePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Resource"]
        arns = sorted(_evaluate(item, template, _defaults(template)) for item in invoke)
        assert arns == [f"arn:aws:execute-api:eu-west-1:111122223333:HttpApi-id/prod/POST/{route}"
                        for route in ("read", "write")]


@pytest.mark.parametrize("variant", PARAMETERISED)
def test_http_api_alarm_and_dashboard_use_the_http_api_metric_names_and_dimensions(
    combinations: dict[tuple[str, str, str], dict[str, Any]], variant: str
) -> None:
    template = combinations[(variant, "HTTP", "no domain")]
    values = _defaults(template)
    alarm = template["Resources"]["HttpApiServerErrorRateAlarm"]["Properties"]
    dimensions = [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}, {"Name": "Stage", "Value": {"Ref": "APIGatewayStageName"}}]
    stats = {query["Id"]: query["MetricStat"] for query in alarm["Metrics"] if "MetricStat" in query}
    assert {name: (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Metric"]["Dimensions"], stat["Stat"])
            for name, stat in stats.items()} == {
        "errors": ("AWS/ApiGateway", "5xx", dimensions, "Sum"),
        "requests": ("AWS/ApiGateway", "Count", dimensions, "Sum"),
    }
    (rate,) = [query for query in alarm["Metrics"] if query.get("ReturnData")]
    assert rate["Expression"] == "errors / requests" and 0 < alarm["Threshold"] < 1
    assert alarm["AlarmName"] == {"Fn::Sub": "${LambdaFunctionName}-api-5xx-rate"}
    dashboard = _dashboard(template, values)
    metrics, _ = _graphed(dashboard)
    api = ("ApiId", "HttpApi-id", "Stage", values["APIGatewayStageName"])
    for metric in ("Count", "4xx", "5xx", "Latency", "IntegrationLatency"):
        assert ("AWS/ApiGateway", metric, *api) in metrics, metric
    assert not [m for m in metrics if m[0] == "AWS/ApiGateway" and "ApiName" in m]
    shown_alarms = {alarm for w in dashboard["widgets"] if w["type"] == "alarm" for alarm in w["properties"]["alarms"]}
    assert "arn:HttpApiServerErrorRateAlarm.Arn" in shown_alarms
    assert "arn:ApiServerErrorRateAlarm.Arn" not in shown_alarms


# --- the zip -----------------------------------------------------------------------------------

def test_zip_holds_the_app_and_nothing_else_of_the_project(bundle: zipfile.ZipFile) -> None:
    names = set(bundle.namelist())
    assert "app.py" in names
    sources = {path.relative_to(ROOT).as_posix() for path in (ROOT / "chalicelib").rglob("*.py")}
    assert sources and sources <= names, sorted(sources - names)
    project_only = (
        "tests/", "bench/", "scripts/", "local_timestream/", "proto/", "docs/", "templates/", ".chalice/",
        ".venv/", "dist/",
    )
    assert not [name for name in names if name.startswith(project_only)]
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_zip_holds_every_runtime_requirement_at_its_pinned_version(bundle: zipfile.ZipFile) -> None:
    installed = {
        canonicalize_name(match.group(1)): match.group(2)
        for name in bundle.namelist()
        if (match := re.match(r"([^/]+)-([^-/]+)\.dist-info/METADATA$", name))
    }
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if not requirement:
            continue
        name, _, version = requirement.partition("==")
        assert installed.get(canonicalize_name(name)) == version, f"{requirement} missing from the zip"


def test_compiled_dependencies_are_linux_x86_64_builds_for_the_runtime(
    bundle: zipfile.ZipFile, templates: dict[str, dict[str, Any]]
) -> None:
    runtime = _resource(templates["simple"], "APIHandler")["Runtime"]
    assert runtime in RUNTIME_GLIBC, f"add the glibc of the {runtime} runtime to RUNTIME_GLIBC"
    max_glibc = RUNTIME_GLIBC[runtime]
    cpython = "cpython-" + runtime.removeprefix("python").replace(".", "")
    libraries = [name for name in bundle.namelist() if name.endswith(".so") or ".so." in name]
    # The two compiled dependencies chalice has been seen to drop without failing.
    assert any(re.fullmatch(r"cramjam/cramjam\..+\.so", name) for name in libraries), libraries
    assert any(re.fullmatch(r"google/_upb/_message\..+\.so", name) for name in libraries), libraries
    for name in libraries:
        header = bundle.open(name).read(20)
        assert header[:4] == b"\x7fELF" and header[4] == 2, f"{name} is not a 64-bit ELF"
        (machine,) = struct.unpack_from("<H" if header[5] == 1 else ">H", header, 18)
        assert machine == ELF_X86_64, f"{name} is built for ELF machine {machine}, not x86_64"
        abi = re.search(r"\.(cpython-[^.]+|abi3)\.so", name)
        if abi and abi.group(1) != "abi3":
            assert abi.group(1) == f"{cpython}-x86_64-linux-gnu", name
    for name in bundle.namelist():
        if not name.endswith(".dist-info/WHEEL"):
            continue
        wheel = bundle.read(name).decode()
        if "Root-Is-Purelib: true" in wheel:
            continue
        tags = re.findall(r"^Tag: (\S+)$", wheel, re.MULTILINE)
        assert tags, name
        for tag in tags:
            _python, abi_tag, platforms = tag.split("-")
            assert abi_tag in ("abi3", cpython.replace("cpython-", "cp")), (name, tag)
            for platform in platforms.split("."):
                glibc = _glibc_of(platform)
                assert glibc is not None and glibc <= max_glibc, (
                    f"{name}: {platform} does not run on {runtime} (glibc {max_glibc})"
                )


def test_zip_holds_no_dev_tooling(bundle: zipfile.ZipFile) -> None:
    names = set(bundle.namelist())
    runtime = _runtime_distributions()
    offenders = []
    for distribution in metadata.distributions():
        name = canonicalize_name(distribution.metadata["Name"])
        if name in runtime:
            continue
        for file in distribution.files or []:
            path = file.as_posix()
            if path in names and path not in CHALICE_RUNTIME:
                offenders.append(f"{name}: {path}")
    assert not offenders, offenders[:20]
    assert {name for name in names if name.startswith("chalice/")} == CHALICE_RUNTIME
    tools = ("pytest", "_pytest", "moto", "hypothesis", "click", "grpc_tools", "cfnlint", "ruff", "requests")
    assert not [name for name in names if name.split("/")[0] in tools]


def test_zip_fits_lambda_limits(dist: Path, bundle: zipfile.ZipFile) -> None:
    assert (dist / "deployment.zip").stat().st_size < 50 * 1024 * 1024  # direct upload limit
    assert sum(info.file_size for info in bundle.infolist()) < 250 * 1024 * 1024  # unzipped limit


# --- documentation -----------------------------------------------------------------------------

def test_deploy_guide_covers_every_parameter_and_output(templates: dict[str, dict[str, Any]]) -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    names = set(templates["advanced-iam"]["Parameters"]) | set(templates["advanced-iam"]["Outputs"])
    names -= {"APIHandlerArn", "APIHandlerName", "RestAPIId", "EndpointURL"}  # chalice's own outputs
    missing = sorted(name for name in names if name not in guide)
    assert not missing, f"docs/deploy.md does not mention {missing}"
