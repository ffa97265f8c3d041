namespace Shepherd.Configuration;

/// <summary>What the gateway does with a prompt that does not fit a model's <c>context_window</c>.</summary>
/// <remarks>Checked only for a model with a <c>context_window</c>: the estimated prompt must fit
/// <c>context_window - reserved_output</c>.</remarks>
public sealed record ContextConfig
{
    public const string Reject = "reject";
    public const string Truncate = "truncate";

    /// <summary><c>reject</c> (400 <c>context_length_exceeded</c>) or <c>truncate</c> (drop the oldest non-system messages).</summary>
    public string Overflow { get; init; } = Reject;

    /// <summary>Tokens of the context window kept free for the answer.</summary>
    public int ReservedOutput { get; init; } = 4096;
}
