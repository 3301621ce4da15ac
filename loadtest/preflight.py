"""Check that a stage can be measured before a run starts, and say what is missing if not."""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from logctl.stage import StageLike, as_stage, session_for

QUICK = Config(connect_timeout=3, read_timeout=10, retries={"total_max_attempts": 1})
DEPLOY_HINT = ("deploy it first: `python -m logctl.provision --stage aws`, "
               "`chalice deploy --stage aws`, "
               "`python -m logctl.provision --stage aws --post-deploy`")


class TargetError(Exception):
    """The stage cannot be measured: no credentials, no endpoint, or resources missing."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def check_target(stage: StageLike) -> None:
    stage = as_stage(stage)
    session = session_for(stage)
    if not stage.is_local:
        if session.get_credentials() is None:
            raise TargetError(
                "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)")
        try:
            identity = session.client("sts", config=QUICK).get_caller_identity()
        except ClientError as exc:
            raise TargetError(f"AWS rejected the credentials ({_code(exc)}): "
                              "refresh them and retry") from exc
        except BotoCoreError as exc:
            raise TargetError(f"cannot reach AWS STS: {exc}") from exc
        account = identity.get("Account", "?")
    where = stage.endpoint_url or f"AWS account {account} in {stage.region}"
    s3: Any = session.client("s3", endpoint_url=stage.endpoint_url, config=QUICK)
    ddb: Any = session.client("dynamodb", endpoint_url=stage.endpoint_url, config=QUICK)
    hint = ("start it with `python -m localruntime`, or use `make run-tests-local` or "
            "`make loadtest`, which start and stop one") if stage.is_local else DEPLOY_HINT
    try:
        s3.head_bucket(Bucket=stage.bucket)
        ddb.describe_table(TableName=stage.results_table)
    except EndpointConnectionError as exc:
        raise TargetError(f"nothing answers at {stage.endpoint_url}: {hint}") from exc
    except ClientError as exc:
        raise TargetError(f"stage {stage.name!r} is not ready at {where} "
                          f"({_code(exc)} for bucket {stage.bucket} or table "
                          f"{stage.results_table}): {hint}") from exc
    except BotoCoreError as exc:
        raise TargetError(f"cannot reach {where}: {exc}") from exc
