namespace Shepherd.Routing.Rules;

using Shepherd.Chat;

/// <summary>
/// The seam <c>shepherd route explain</c> asks for the order in which a model's deployments would be tried for a
/// request, each with the reason for its place.
/// </summary>
/// <remarks>The default is the configured order. When routing strategies (weights, health, fallbacks) land, their
/// preview replaces <see cref="Default"/> so the CLI shows what the executor would do.</remarks>
public static class DeploymentOrderPreview
{
    public static Func<CatalogModel, ChatRequest, IReadOnlyList<(CatalogDeployment Deployment, string Reason)>> Default { get; } = ConfiguredOrder;

    /// <summary>The deployments as configured: "configured position N".</summary>
    public static IReadOnlyList<(CatalogDeployment Deployment, string Reason)> ConfiguredOrder(CatalogModel model, ChatRequest request) =>
        model.Deployments.Select(d => (d, $"configured position {d.Index + 1}")).ToArray();
}
