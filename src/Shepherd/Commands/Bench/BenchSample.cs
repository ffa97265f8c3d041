namespace Shepherd.Cli.Commands.Bench;

/// <summary>What one request measured.</summary>
internal sealed record BenchSample
{
    /// <summary>When the request was sent, in milliseconds since the model's run started.</summary>
    public required double StartMs { get; init; }

    /// <summary>From sending the request to the last byte of the answer (the end of the stream).</summary>
    public required double LatencyMs { get; init; }

    /// <summary>Streams: from sending the request to the first chunk with content. Null otherwise.</summary>
    public double? TtftMs { get; init; }

    /// <summary>The HTTP status, or 0 when no response arrived (connection failure, timeout).</summary>
    public required int Status { get; init; }

    /// <summary>
    /// Null on success; otherwise the key under which the error is counted: the HTTP status ("404"), "network" (no
    /// response), "timeout" (no complete answer within --timeout) or "stream" (the stream failed after it began).
    /// </summary>
    public string? ErrorStatus { get; init; }

    /// <summary>The OpenAI error's <c>code</c> (else its <c>type</c>), or a short name of a transport failure.</summary>
    public string? ErrorCode { get; init; }

    /// <summary>The error message, for the report of the first error.</summary>
    public string? ErrorMessage { get; init; }

    public bool Ok => ErrorStatus is null;

    public int? InputTokens { get; init; }

    public int? OutputTokens { get; init; }

    /// <summary>True when <see cref="OutputTokens"/> was counted from content chunks because no usage arrived.</summary>
    public bool OutputTokensCounted { get; init; }

    /// <summary>The cost the gateway reported (header or the stream's <c>shepherd</c> object), else null.</summary>
    public decimal? CostUsd { get; init; }

    /// <summary>The model that served (<c>x-shepherd-model</c>), when the gateway said.</summary>
    public string? ServedModel { get; init; }

    /// <summary>The provider that served (<c>x-shepherd-provider</c>), when the gateway said.</summary>
    public string? ServedProvider { get; init; }

    /// <summary>
    /// Streams: output speed after the first token, (output tokens − 1) / (latency − TTFT); null when there is
    /// less than two tokens or no measurable time between the first token and the end.
    /// </summary>
    public double? StreamTokensPerSecond =>
        Ok && TtftMs is { } ttft && OutputTokens is > 1 && LatencyMs - ttft >= 0.001
            ? (OutputTokens.Value - 1) / ((LatencyMs - ttft) / 1000)
            : null;
}
