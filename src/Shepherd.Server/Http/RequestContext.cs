namespace Shepherd.Server.Http;

using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Shepherd.Chat;
using Shepherd.Routing;
using Shepherd.Security;

/// <summary>Everything the gateway learns about one request, in one place (YARP's per-request feature object).</summary>
public sealed class RequestContext
{
    public required string RequestId { get; init; }

    public long StartTimestamp { get; init; }

    public Caller? Caller { get; set; }

    /// <summary>The model name the client asked for.</summary>
    public string? RequestedModel { get; set; }

    public RouteInfo? Route { get; set; }

    /// <summary>Records the route of the attempt under way (passed to the executor).</summary>
    public void SetRoute(RouteInfo route) => Route = route;

    public Usage Usage { get; set; }

    public bool Streamed { get; set; }

    /// <summary>The error class when the request failed (for logs and, later, usage records).</summary>
    public string? ErrorCode { get; set; }

    public static RequestContext Get(HttpContext context) => context.Features.GetRequiredFeature<RequestContext>();
}
