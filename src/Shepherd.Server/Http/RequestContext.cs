namespace Shepherd.Server.Http;

using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Shepherd.Chat;
using Shepherd.Limits;
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

    /// <summary>The prompt's token count as sent, when the gateway already made one (routing rules, context window,
    /// limits): reused if the provider reports no usage, rather than tokenising the prompt again.</summary>
    public int? PromptTokensCounted { get; set; }

    /// <summary>The usage was counted by the gateway because the provider reported none.</summary>
    public bool UsageEstimated { get; set; }

    /// <summary>What the request cost, in USD, at the served model's price.</summary>
    public decimal Cost { get; set; }

    /// <summary>The reservation against the key's limits; settled when the request ends.</summary>
    public LimitLease Lease { get; set; }

    public bool Streamed { get; set; }

    /// <summary>When the first byte of a stream went to the client (a <see cref="System.Diagnostics.Stopwatch"/> timestamp; 0 before).</summary>
    public long FirstByteTimestamp { get; set; }

    /// <summary>Set once the chat endpoint has authenticated the caller: the request gets a usage record.</summary>
    public bool Accountable { get; set; }

    /// <summary>The error class when the request failed (for logs and, later, usage records).</summary>
    public string? ErrorCode { get; set; }

    public static RequestContext Get(HttpContext context) => context.Features.GetRequiredFeature<RequestContext>();
}
