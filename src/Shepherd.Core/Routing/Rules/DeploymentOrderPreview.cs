namespace Shepherd.Routing.Rules;

using Shepherd.Chat;

/// <summary>
/// The seam <c>shepherd route explain</c> asks for the order in which a model's deployments would be tried for a
/// request, each with the reason for its place.
/// </summary>
/// <remarks>The default is what the executor would do: the model's strategy order (with a typical draw for weighted
/// random tiers), then each fallback model's deployments.</remarks>
public static class DeploymentOrderPreview
{
    public static Func<CatalogModel, ChatRequest, IReadOnlyList<(CatalogDeployment Deployment, string Reason)>> Default { get; } =
        (model, request) => ChatExecutor.Preview(model, DateTimeOffset.UtcNow, Accounting.TokenEstimator.Default.EstimatePrompt(request), request.RequestedMaxOutputTokens ?? model.Config.MaxOutputTokens ?? 1024);

    /// <summary>The deployments as configured: "configured position N".</summary>
    public static IReadOnlyList<(CatalogDeployment Deployment, string Reason)> ConfiguredOrder(CatalogModel model, ChatRequest request) =>
        model.Deployments.Select(d => (d, $"configured position {d.Index + 1}")).ToArray();
}
