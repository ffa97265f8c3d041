namespace Shepherd.Providers;

using Shepherd.Chat;

/// <summary>One attempt against one deployment with one upstream key.</summary>
/// <param name="Request">The validated client request.</param>
/// <param name="UpstreamModel">The model name the upstream knows.</param>
/// <param name="ApiKey">The upstream key chosen for this attempt (may be empty for keyless servers).</param>
/// <param name="DefaultMaxOutputTokens">Used when the client gave no output limit and the upstream requires one.</param>
public sealed record UpstreamCall(ChatRequest Request, string UpstreamModel, string ApiKey, int DefaultMaxOutputTokens = 4096);
