"""What we add to the sandbox's AWS emulator (orchestrator/sandbox_moto.py), asked over HTTP with
boto3 of the real server process ``sandbox.start`` launches: EKS DescribeUpdate/ListUpdates for the
updates UpdateNodegroupConfig and UpdateClusterConfig make, one OIDC issuer per cluster, a
retried security-group rule authorization, and EC2's answer to deleting a launch template that is gone."""

from __future__ import annotations

import re

import pytest

from orchestrator import sandbox
from tests.conftest import require_module


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory):
    require_module("moto.server", "moto[server] (the sandbox emulator)")
    boto3 = require_module("boto3", "boto3 (to ask the emulator)")
    state_dir = tmp_path_factory.mktemp("emulator")
    info = sandbox.start(state_dir)
    try:
        yield lambda service, region: boto3.client(
            service, region_name=region, endpoint_url=info.endpoint,
            aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    finally:
        sandbox.stop(state_dir)


@pytest.fixture(scope="module")
def eks(emulator):
    return lambda region: emulator("eks", region)


def _cluster(client, name: str) -> dict:
    return client.create_cluster(
        name=name, roleArn="arn:aws:iam::123456789012:role/c",
        resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]})["cluster"]


def test_each_cluster_gets_its_own_oidc_issuer(eks) -> None:
    client = eks("us-east-1")
    first, second = _cluster(client, "one")["identity"]["oidc"]["issuer"], _cluster(client, "two")
    second = second["identity"]["oidc"]["issuer"]
    pattern = r"https://oidc\.eks\.us-east-1\.amazonaws\.com/id/[0-9A-F]{32}"
    assert re.fullmatch(pattern, first) and re.fullmatch(pattern, second)
    assert first != second  # one IAM OIDC provider ARN per cluster: two environments in a region


def test_nodegroup_and_cluster_updates_can_be_described(eks) -> None:
    client = eks("eu-west-1")
    _cluster(client, "c1")
    client.create_nodegroup(clusterName="c1", nodegroupName="system", nodeRole="arn:aws:iam::123456789012:role/n",
                            subnets=["subnet-1"], scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 1})
    update = client.update_nodegroup_config(clusterName="c1", nodegroupName="system",
                                            scalingConfig={"minSize": 1, "maxSize": 5, "desiredSize": 1})["update"]
    described = client.describe_update(name="c1", updateId=update["id"], nodegroupName="system")["update"]
    assert (described["id"], described["status"], described["type"]) == (update["id"], "Successful", "ConfigUpdate")
    scaling = client.describe_nodegroup(clusterName="c1", nodegroupName="system")["nodegroup"]["scalingConfig"]
    assert scaling == {"minSize": 1, "maxSize": 5, "desiredSize": 1}
    assert client.list_updates(name="c1", nodegroupName="system")["updateIds"] == [update["id"]]

    cluster_update = client.update_cluster_config(
        name="c1", logging={"clusterLogging": [{"types": ["api"], "enabled": True}]})["update"]
    assert client.describe_update(name="c1", updateId=cluster_update["id"])["update"]["status"] == "Successful"
    assert client.list_updates(name="c1")["updateIds"] == [cluster_update["id"]]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_update(name="c1", updateId=update["id"])  # a node group's update, asked without it
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_update(name="c1", updateId="00000000-0000-0000-0000-000000000000")


def test_a_retried_rule_authorization_succeeds_once_and_other_duplicates_still_fail(emulator) -> None:
    """The provider resends an AuthorizeSecurityGroupIngress whose answer it lost: the copy gets the
    first answer (the same rule), once; a third copy, or a duplicate of an older rule, fails as on AWS."""
    from botocore.exceptions import ClientError

    ec2 = emulator("ec2", "us-west-2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    node = ec2.create_security_group(GroupName="node", Description="n", VpcId=vpc)["GroupId"]
    cluster = ec2.create_security_group(GroupName="cluster", Description="c", VpcId=vpc)["GroupId"]
    rule = {"GroupId": node, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 10250, "ToPort": 10250,
                                                "UserIdGroupPairs": [{"GroupId": cluster}]}]}
    first = ec2.authorize_security_group_ingress(**rule)["SecurityGroupRules"]
    retried = ec2.authorize_security_group_ingress(**rule)["SecurityGroupRules"]
    assert [r["SecurityGroupRuleId"] for r in retried] == [r["SecurityGroupRuleId"] for r in first]
    with pytest.raises(ClientError, match="InvalidPermission.Duplicate"):
        ec2.authorize_security_group_ingress(**rule)
    egress = {"GroupId": node, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                                  "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]}
    ec2.authorize_security_group_egress(**egress)
    ec2.authorize_security_group_egress(**egress)  # the retry
    with pytest.raises(ClientError, match="InvalidPermission.Duplicate"):
        ec2.authorize_security_group_egress(**egress)
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [node]}])["SecurityGroupRules"]
    assert sum(1 for r in rules if r.get("FromPort") == 10250) == 1  # applied once, whatever the copies


def test_deleting_a_launch_template_that_is_gone_answers_as_ec2_does(emulator) -> None:
    import botocore.exceptions

    ec2 = emulator("ec2", "eu-west-1")
    made = ec2.create_launch_template(LaunchTemplateName="pool", LaunchTemplateData={"InstanceType": "m6i.large"})
    tid = made["LaunchTemplate"]["LaunchTemplateId"]
    assert ec2.delete_launch_template(LaunchTemplateId=tid)["LaunchTemplate"]["LaunchTemplateId"] == tid
    with pytest.raises(botocore.exceptions.ClientError) as by_id:  # again, as after a lost answer
        ec2.delete_launch_template(LaunchTemplateId=tid)
    # the code the provider's delete takes as "already deleted" (moto alone says ...Name.NotFoundException)
    assert by_id.value.response["Error"]["Code"] == "InvalidLaunchTemplateId.NotFound"
