namespace Shepherd.Cli.Commands.Bench;

/// <summary>One benchmark's settings, validated; the same for every model of a comparison.</summary>
internal sealed record BenchSettings
{
    /// <summary>The OpenAI base URL, ending in <c>/v1</c> (no trailing slash).</summary>
    public required Uri BaseUrl { get; init; }

    public string? Key { get; init; }

    /// <summary>The models to run, in order (one unless --compare).</summary>
    public required IReadOnlyList<string> Models { get; init; }

    /// <summary>Requests per model when <see cref="Duration"/> is null.</summary>
    public required int Requests { get; init; }

    /// <summary>Run each model this long instead of a number of requests.</summary>
    public TimeSpan? Duration { get; init; }

    public required int Concurrency { get; init; }

    public required bool Stream { get; init; }

    public int? MaxTokens { get; init; }

    /// <summary>The <c>messages</c> array, as JSON.</summary>
    public required string MessagesJson { get; init; }

    /// <summary>Where the prompt came from: "built-in" or the file.</summary>
    public required string PromptSource { get; init; }

    /// <summary>The longest a single request may take before it counts as a "timeout" error.</summary>
    public required TimeSpan Timeout { get; init; }

    /// <summary>
    /// Accepts <c>http://host:port</c>, <c>http://host:port/v1</c>, or a prefix such as <c>http://host/gateway</c>; the
    /// result always ends in <c>/v1</c>. Null when it is not an absolute http(s) URL.
    /// </summary>
    public static Uri? NormalizeBaseUrl(string url)
    {
        if (!Uri.TryCreate(url.Trim(), UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            || !string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
        {
            return null;
        }

        var path = uri.AbsolutePath.TrimEnd('/');
        if (!path.EndsWith("/v1", StringComparison.OrdinalIgnoreCase))
        {
            path += "/v1";
        }

        return new UriBuilder(uri) { Path = path }.Uri;
    }
}
