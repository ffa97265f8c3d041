namespace Shepherd.Tests.Routing;

using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Testing;

/// <summary>Shared pieces of the end-to-end routing and resilience tests.</summary>
internal static class RoutingKit
{
    /// <summary>Where every fake clock starts.</summary>
    public static readonly DateTimeOffset Start = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    /// <summary>Generous upstream timeouts, so only what a test configures on purpose ever times out.</summary>
    public const string Timeouts = "{ connect_ms: 5000, first_byte_ms: 30000, idle_ms: 30000 }";

    public static FakeTimeProvider Clock() => new(Start);

    /// <summary>A provider entry for a fake OpenAI upstream.</summary>
    public static string Provider(string name, FakeOpenAI fake, string keys = "[ sk-upstream-1 ]", string? timeouts = null) => $"""
          - name: {name}
            type: openai
            base_url: {fake.BaseUrl}
            api_keys: {keys}
            timeouts: {timeouts ?? Timeouts}

        """;

    /// <summary>The usual set-up: <paramref name="routing"/> (a YAML mapping), one provider <c>p</c> in front of the
    /// fake and one model <c>m</c> on it.</summary>
    public static string OneModel(FakeOpenAI fake, string routing, string keys = "[ sk-upstream-1 ]") => $"""
        routing: {routing}
        providers:
        {Provider("p", fake, keys)}
        models:
          - name: m
            deployments: [ {"{"} provider: p, model: up {"}"} ]
        """;

    public static HttpRequestMessage Request(string model, bool stream = false, string? requestId = null, string? fallbacks = null, string? content = null)
    {
        var body = stream
            ? $$"""{"model":"{{model}}","stream":true,"messages":[{"role":"user","content":{{JsonSerializer.Serialize(content ?? "hi")}}}]}"""
            : $$"""{"model":"{{model}}","messages":[{"role":"user","content":{{JsonSerializer.Serialize(content ?? "hi")}}}]}""";
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        if (requestId is not null)
        {
            request.Headers.Add("x-request-id", requestId);
        }

        if (fallbacks is not null)
        {
            request.Headers.Add("x-shepherd-fallbacks", fallbacks);
        }

        return request;
    }

    /// <summary>Sends a chat request and reads the whole answer.</summary>
    public static async Task<Answer> SendAsync(GatewayHost gateway, string model, bool stream = false, string? requestId = null, string? fallbacks = null, CancellationToken cancellationToken = default)
    {
        using var request = Request(model, stream, requestId, fallbacks);
        using var response = await gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        return new Answer((int)response.StatusCode, response.Headers, response.Content.Headers, body);
    }

    /// <summary>
    /// Moves the fake clock forward in <paramref name="step"/>s while <paramref name="pending"/> runs, giving the gateway
    /// a moment between steps to reach its next timer. Only the clock decides when timers fire; the real pause just
    /// paces the steps, so outcomes never depend on it.
    /// </summary>
    public static async Task<T> AdvanceWhilePendingAsync<T>(this FakeTimeProvider time, Task<T> pending, TimeSpan step, TimeSpan? limit = null)
    {
        var advanced = TimeSpan.Zero;
        var max = limit ?? TimeSpan.FromMinutes(10);
        while (!pending.IsCompleted)
        {
            await Task.WhenAny(pending, Task.Delay(5));
            if (pending.IsCompleted)
            {
                break;
            }

            if (advanced >= max)
            {
                throw new TimeoutException($"Still pending after moving the clock {advanced}.");
            }

            time.Advance(step);
            advanced += step;
        }

        return await pending;
    }

    /// <summary>Waits (really) until <paramref name="condition"/> holds: for things that happen after a response was sent.</summary>
    public static Task EventuallyAsync(Func<bool> condition, string what, int timeoutMs = 10_000) =>
        Eventually.HoldsAsync(condition, what, TimeSpan.FromMilliseconds(timeoutMs));

    public static async Task<JsonElement> AdminRoutingAsync(GatewayHost gateway)
    {
        using var response = await gateway.Client.GetAsync("/admin/routing");
        response.EnsureSuccessStatusCode();
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return doc.RootElement.Clone();
    }

    public static JsonElement Deployment(JsonElement routing, string deploymentId) =>
        routing.GetProperty("deployments").EnumerateArray().Single(d => d.GetProperty("deployment").GetString() == deploymentId);

    public static string BreakerState(JsonElement routing, string deploymentId) =>
        Deployment(routing, deploymentId).GetProperty("breaker").GetProperty("state").GetString()!;

    public static JsonElement Key(JsonElement routing, string keyId) =>
        routing.GetProperty("providers").EnumerateArray()
            .SelectMany(p => p.GetProperty("keys").EnumerateArray())
            .Single(k => k.GetProperty("id").GetString() == keyId);

    /// <summary>The request-completed log lines (one per request) of a request id.</summary>
    public static int RequestLines(GatewayHost gateway, string requestId) =>
        gateway.Logs.Lines.Count(l => l.Contains($": {requestId} POST /v1/chat/completions ", StringComparison.Ordinal));

    public static string RequestLine(GatewayHost gateway, string requestId) =>
        gateway.Logs.Lines.Single(l => l.Contains($": {requestId} POST /v1/chat/completions ", StringComparison.Ordinal));
}

/// <summary>A response read to its end.</summary>
internal sealed record Answer(int Status, HttpResponseHeaders Headers, HttpContentHeaders ContentHeaders, string Body)
{
    public string? Header(string name) =>
        Headers.TryGetValues(name, out var values) ? string.Join(",", values) : ContentHeaders.TryGetValues(name, out var content) ? string.Join(",", content) : null;

    public int Attempts => int.Parse(Header("x-shepherd-attempts") ?? "0", System.Globalization.CultureInfo.InvariantCulture);

    public string? Deployment => Header("x-shepherd-deployment");

    public List<string> Events => Sse.DataEvents(Body);

    public string StreamedContent => Sse.Content(Events.Where(e => !e.Contains("\"error\"", StringComparison.Ordinal)));

    public string MessageContent
    {
        get
        {
            using var doc = JsonDocument.Parse(Body);
            return doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        }
    }

    public JsonElement Error
    {
        get
        {
            using var doc = JsonDocument.Parse(Body);
            return doc.RootElement.GetProperty("error").Clone();
        }
    }
}
