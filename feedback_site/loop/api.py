"""Staff API of the closed loop: simulated annotators and their runs, campaigns with results, rounds."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core.errors import NotFound
from feedback_site.loop import services
from feedback_site.loop.models import Campaign, Round, SimulatedAnnotator, SimulationRun
from feedback_site.projects.permissions import STAFF_ROLES, project_for, require_role


class SimulatedOut(serializers.ModelSerializer):
    class Meta:
        model = SimulatedAnnotator
        fields = ["id", "name", "rule", "keyword", "reward_model", "noise", "seed", "tie_policy", "user", "created_at"]


class SimulatedIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    rule = serializers.CharField()
    noise = serializers.FloatField(default=0.1)
    seed = serializers.IntegerField(default=0, min_value=0)
    keyword = serializers.CharField(default="", allow_blank=True)
    tie_policy = serializers.CharField(default="random")
    reward_model_id = serializers.IntegerField(required=False, allow_null=True, default=None)


class SimulationOut(serializers.ModelSerializer):
    class Meta:
        model = SimulationRun
        fields = ["id", "annotator", "target", "done", "status", "message", "created_at", "finished_at"]


class SimulationIn(serializers.Serializer):
    target = serializers.IntegerField()


class CampaignOut(serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "version_x",
            "version_y",
            "prompt_ids",
            "sampling",
            "overlap",
            "status",
            "message",
            "pair_count",
            "created_at",
        ]


class CampaignIn(serializers.Serializer):
    version_x_id = serializers.IntegerField()
    version_y_id = serializers.IntegerField()
    name = serializers.CharField(default="", allow_blank=True, max_length=200)
    max_prompts = serializers.IntegerField(default=100)
    overlap = serializers.IntegerField(default=1)
    prompt_ids = serializers.ListField(child=serializers.IntegerField(), required=False, allow_null=True, default=None)
    sampling = serializers.DictField(default=dict)


class RoundOut(serializers.ModelSerializer):
    class Meta:
        model = Round
        fields = [
            "id",
            "number",
            "stage",
            "config",
            "policy",
            "simulated_annotator",
            "generation_run",
            "simulation_run",
            "snapshot",
            "reward_run",
            "training_run",
            "evaluation_run",
            "output_version",
            "promoted",
            "message",
            "history",
            "created_at",
            "updated_at",
        ]


class RoundIn(serializers.Serializer):
    simulated_annotator_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    config = serializers.DictField(default=dict)


class DecideIn(serializers.Serializer):
    promote = serializers.BooleanField()
    reason = serializers.CharField(default="", allow_blank=True, max_length=500)


@extend_schema(methods=["GET"], responses=SimulatedOut(many=True), summary="Simulated annotators of a project")
@extend_schema(methods=["POST"], request=SimulatedIn, responses={201: SimulatedOut}, summary="Create a simulated annotator")
@api_view(["GET", "POST"])
def simulated_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        data = SimulatedIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        annotator = services.simulated_annotator_create(
            project=project,
            actor=request.user,
            name=v["name"],
            rule=v["rule"],
            noise=v["noise"],
            seed=v["seed"],
            keyword=v["keyword"],
            tie_policy=v["tie_policy"],
            reward_model=v["reward_model_id"],
        )
        return Response(SimulatedOut(annotator).data, status=status.HTTP_201_CREATED)
    return Response(SimulatedOut(SimulatedAnnotator.objects.filter(project=project), many=True).data)


@extend_schema(request=SimulationIn, responses={201: SimulationOut}, summary="Queue a simulated annotator to judge up to N pairs")
@api_view(["POST"])
def simulation_create(request, annotator_id: int):
    annotator = SimulatedAnnotator.objects.select_related("project").filter(pk=annotator_id).first()
    if annotator is None:
        raise NotFound("No such simulated annotator.")
    require_role(request.user, annotator.project_id, STAFF_ROLES)
    data = SimulationIn(data=request.data)
    data.is_valid(raise_exception=True)
    run = services.simulation_launch(annotator=annotator, target=data.validated_data["target"], actor=request.user)
    return Response(SimulationOut(run).data, status=status.HTTP_201_CREATED)


@extend_schema(methods=["GET"], responses=CampaignOut(many=True), summary="Blind A/B campaigns of a project")
@extend_schema(
    methods=["POST"], request=CampaignIn, responses={201: CampaignOut}, summary="Launch a blind A/B campaign between two policy versions"
)
@api_view(["GET", "POST"])
def campaign_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        data = CampaignIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        campaign = services.campaign_launch(
            project=project,
            actor=request.user,
            version_x=v["version_x_id"],
            version_y=v["version_y_id"],
            name=v["name"],
            max_prompts=v["max_prompts"],
            overlap=v["overlap"],
            prompt_ids=v["prompt_ids"],
            **v["sampling"],
        )
        return Response(CampaignOut(campaign).data, status=status.HTTP_201_CREATED)
    return Response(CampaignOut(Campaign.objects.filter(project=project)[:200], many=True).data)


@extend_schema(responses=dict, summary="A campaign with its win / tie / loss results (humans only unless ?simulated=1)")
@api_view(["GET"])
def campaign_detail(request, campaign_id: int):
    campaign = services.campaign_get(campaign_id=campaign_id, actor=request.user)
    results = services.campaign_results(campaign, include_simulated=request.query_params.get("simulated") == "1")
    return Response({**CampaignOut(campaign).data, "results": results})


@extend_schema(methods=["GET"], responses=RoundOut(many=True), summary="Rounds of a project")
@extend_schema(methods=["POST"], request=RoundIn, responses={201: RoundOut}, summary="Start a round from the current policy")
@api_view(["GET", "POST"])
def round_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        data = RoundIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        rnd = services.round_start(project=project, actor=request.user, simulated_annotator=v["simulated_annotator_id"], config=v["config"])
        return Response(RoundOut(rnd).data, status=status.HTTP_201_CREATED)
    return Response(RoundOut(Round.objects.filter(project=project).order_by("-number")[:200], many=True).data)


@extend_schema(responses=RoundOut, summary="One round with each stage's job")
@api_view(["GET"])
def round_detail(request, round_id: int):
    return Response(RoundOut(services.round_get(round_id=round_id, actor=request.user)).data)


@extend_schema(request=None, responses=RoundOut, summary="Advance a round now (idempotent)")
@api_view(["POST"])
def round_advance(request, round_id: int):
    rnd = services.round_get(round_id=round_id, actor=request.user)
    return Response(RoundOut(services.round_advance(round_id=rnd.pk)).data)


@extend_schema(request=DecideIn, responses=RoundOut, summary="Promote the round's new policy, or keep the old one")
@api_view(["POST"])
def round_decide(request, round_id: int):
    rnd = services.round_get(round_id=round_id, actor=request.user)
    data = DecideIn(data=request.data)
    data.is_valid(raise_exception=True)
    v = data.validated_data
    return Response(RoundOut(services.round_decide(round=rnd, actor=request.user, promote=v["promote"], reason=v["reason"])).data)
