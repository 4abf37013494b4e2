#!/usr/bin/env bash
# Builds the deployment artefacts with `chalice package` and the merge templates in templates/:
#
#   <out>/simple-template.yml        no parameters, basic auth            (templates/simple.yml)
#   <out>/advanced-template.yml      parameters, basic auth               (templates/advanced.yml
#                                    + front-door.yml: REST or HTTP API, custom domain, mutual TLS)
#   <out>/advanced-iam-template.yml  parameters, SigV4 auth, AUTH_MODE=iam (the same + iam.yml)
#   <out>/deployment.zip             app.py, chalicelib/ and the Linux x86_64 wheels of
#                                    requirements.txt, for the Lambda runtime
#
# templates/gateway-responses.yml (API Gateway's own error answers) is merged into all three.
#
# The templates refer to ./deployment.zip (CodeUri), so keep the four files together; see
# docs/deploy.md for deploying them.
#
# Usage: scripts/package.sh [OUT_DIR]   (default: dist; run from anywhere)
# Environment: BIN     directory holding chalice and python (default: <project>/.venv/bin)
#              STAGE   chalice stage whose settings are packaged (default: prod)
#
# Needs a region but no AWS credentials; downloads wheels from the package index the first time
# (chalice caches them in .chalice/deployments/).
set -euo pipefail

project_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$project_dir"

out_dir=${1:-dist}
bin_dir=${BIN:-$project_dir/.venv/bin}
stage=${STAGE:-prod}
# chalice refuses to package without a region; the templates use ${AWS::Region}, not this.
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}

if [[ ! -f app.py ]]; then
    echo "package.sh: no app.py in $project_dir" >&2
    exit 1
fi

work_dir=$(mktemp -d)
trap 'rm -rf "$work_dir"' EXIT

# chalice takes one merge template: deep-merge each variant's layers into one file first (later
# layers win), with chalice's own YAML loader and merger so the result is what chalice would have
# made of them.
merge() {  # merge OUT LAYER...
    "$bin_dir/python" - "$@" <<'PY'
import sys

import yaml
from chalice.package import TemplateDeepMerger, YAMLTemplateSerializer

out_path, *layer_paths = sys.argv[1:]
serializer = YAMLTemplateSerializer()
merged = {}
for path in layer_paths:
    with open(path) as layer:
        merged = TemplateDeepMerger().merge(serializer.load_template(layer.read(), path), merged)
with open(out_path, "w") as out:
    yaml.safe_dump(merged, out, sort_keys=False)
PY
}

# The IAM variant signs every route app.py has (the catch-all ones included), written as chalice
# writes it for an IAMAuthorizer: the list comes from the app, so no route is left open by omission.
"$bin_dir/python" - "$work_dir/signed-routes.yml" <<'PY'
import sys

import yaml

sys.path.insert(0, ".")
from app import app  # noqa: E402

paths = {
    path: {method.lower(): {"security": [{"sigv4": []}]} for method in methods}
    for path, methods in app.routes.items()
}
definition = {
    "securityDefinitions": {
        "sigv4": {"type": "apiKey", "name": "Authorization", "in": "header",
                  "x-amazon-apigateway-authtype": "awsSigv4"},
    },
    "paths": paths,
}
with open(sys.argv[1], "w") as out:
    yaml.safe_dump({"Resources": {"RestAPI": {"Properties": {"DefinitionBody": definition}}}}, out)
PY

# The HTTP API's routes (advanced templates, ApiType=HTTP): one AWS::ApiGatewayV2::Route per route
# and method of app.py, the catch-all ones included, so that the app answers every path it knows
# (an HTTP API cannot change API Gateway's own answers). With --iam every route requires AWS_IAM.
# The stage depends on every route: its per-route throttling settings need them to exist.
http_routes() {  # http_routes OUT [--iam]
    "$bin_dir/python" - "$@" <<'PY'
import re
import sys

import yaml

sys.path.insert(0, ".")
from app import app  # noqa: E402

out_path, *flags = sys.argv[1:]
resources = {}
for path, methods in app.routes.items():
    words = re.findall(r"[A-Za-z0-9]+", path) or ["Root"]
    for method in methods:
        name = "HttpRoute" + method.title() + "".join(word[:1].upper() + word[1:] for word in words)
        properties = {
            "ApiId": {"Ref": "HttpApi"},
            "RouteKey": f"{method} {path}",
            "Target": {"Fn::Sub": "integrations/${HttpApiIntegration}"},
            "AuthorizationType": "AWS_IAM" if "--iam" in flags else "NONE",
        }
        assert name not in resources, name
        resources[name] = {"Type": "AWS::ApiGatewayV2::Route", "Condition": "IsHttpApi", "Properties": properties}
resources["HttpApiStage"] = {"DependsOn": sorted(resources)}
with open(out_path, "w") as out:
    yaml.safe_dump({"Resources": resources}, out, sort_keys=False)
PY
}
http_routes "$work_dir/http-routes.yml"
http_routes "$work_dir/http-routes-iam.yml" --iam

merge "$work_dir/simple.yml" templates/simple.yml templates/gateway-responses.yml
merge "$work_dir/advanced.yml" templates/advanced.yml templates/gateway-responses.yml templates/front-door.yml \
    "$work_dir/http-routes.yml"
merge "$work_dir/advanced-iam.yml" templates/advanced.yml templates/gateway-responses.yml templates/front-door.yml \
    "$work_dir/http-routes-iam.yml" templates/iam.yml "$work_dir/signed-routes.yml"

package() {  # package VARIANT MERGE_TEMPLATE
    local variant=$1 merge_template=$2
    echo "package.sh: $variant (stage $stage, merge template $merge_template)"
    "$bin_dir/chalice" package --stage "$stage" --merge-template "$merge_template" \
        "$work_dir/$variant"
    if [[ ! -s "$work_dir/$variant/sam.yaml" || ! -s "$work_dir/$variant/deployment.zip" ]]; then
        echo "package.sh: chalice package produced no template or zip for $variant" >&2
        exit 1
    fi
}

for variant in simple advanced advanced-iam; do
    package "$variant" "$work_dir/$variant.yml"
done

mkdir -p "$out_dir"
for variant in simple advanced advanced-iam; do
    cp "$work_dir/$variant/sam.yaml" "$out_dir/$variant-template.yml"
done
# The three zips hold the same app and dependencies; ship one.
cp "$work_dir/advanced/deployment.zip" "$out_dir/deployment.zip"
echo "package.sh: wrote $out_dir/{simple,advanced,advanced-iam}-template.yml and $out_dir/deployment.zip"
