namespace Shepherd.Cli.Commands.Bench;

using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Shepherd.Providers.Shared;

/// <summary>
/// Sends OpenAI Chat Completions requests and measures them. One pooled <see cref="HttpClient"/> for the whole
/// benchmark, with as many connections as requests run at once, so connection set-up is paid once, not per request.
/// </summary>
internal sealed class BenchClient : IDisposable
{
    /// <summary>At most this much of an error body is read: enough for any OpenAI error object.</summary>
    private const int MaxErrorBodyBytes = 64 * 1024;

    private static readonly MediaTypeHeaderValue JsonType = new("application/json");

    private readonly HttpClient _http;

    private readonly Uri _chat;

    private readonly Uri _models;

    private readonly TimeSpan _timeout;

    public BenchClient(BenchSettings settings, HttpMessageHandler? handler = null)
    {
        handler ??= new SocketsHttpHandler
        {
            MaxConnectionsPerServer = settings.Concurrency,
            PooledConnectionLifetime = TimeSpan.FromMinutes(10),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            UseProxy = false,
        };
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        if (!string.IsNullOrEmpty(settings.Key))
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", settings.Key);
        }

        _http.DefaultRequestHeaders.UserAgent.ParseAdd($"shepherd-bench/{Server.Hosting.GatewayServices.Version}");
        var root = settings.BaseUrl.AbsoluteUri.TrimEnd('/') + "/";
        _chat = new Uri(root + "chat/completions");
        _models = new Uri(root + "models");
        _timeout = settings.Timeout;
    }

    /// <summary>The request body for one model: the same bytes for every request of its run.</summary>
    public static byte[] RequestBody(BenchSettings settings, string model)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("model"u8, model);
            writer.WritePropertyName("messages"u8);
            writer.WriteRawValue(settings.MessagesJson);
            if (settings.MaxTokens is { } maxTokens)
            {
                writer.WriteNumber("max_tokens"u8, maxTokens);
            }

            if (settings.Stream)
            {
                writer.WriteBoolean("stream"u8, true);

                // Asks for the final usage chunk: exact output tokens (and, from Shepherd, the cost) for the stream.
                writer.WriteStartObject("stream_options"u8);
                writer.WriteBoolean("include_usage"u8, true);
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>
    /// <c>GET /v1/models</c> before the run: tells an unreachable gateway (null status) or a refused key from a
    /// usable one, and opens the first connection.
    /// </summary>
    public async Task<(int? Status, string Message)> PreflightAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(Math.Min(15, _timeout.TotalSeconds)));
        try
        {
            using var response = await _http.GetAsync(_models, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var (code, message) = response.IsSuccessStatusCode ? (null, null) : await ReadErrorAsync(response, timeout.Token);
            return ((int)response.StatusCode, message ?? code ?? response.ReasonPhrase ?? string.Empty);
        }
        catch (HttpRequestException ex)
        {
            return (null, ex.Message);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, "no answer within 15 seconds");
        }
    }

    /// <summary>Sends one request and measures it. Throws only when <paramref name="cancellationToken"/> is cancelled.</summary>
    /// <param name="body">From <see cref="RequestBody"/>.</param>
    /// <param name="stream">True when the body asks for a stream.</param>
    /// <param name="runStart">The <see cref="Stopwatch"/> timestamp of the run's start.</param>
    /// <param name="cancellationToken">Stops the benchmark (Ctrl+C); the request is then dropped, not counted.</param>
    public async Task<BenchSample> SendAsync(byte[] body, bool stream, long runStart, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        var start = Stopwatch.GetTimestamp();
        var startMs = Stopwatch.GetElapsedTime(runStart, start).TotalMilliseconds;
        var status = 0;
        string? servedModel = null;
        string? servedProvider = null;
        BenchSample Failed(string errorStatus, string code, string message) => new()
        {
            StartMs = startMs,
            LatencyMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds,
            Status = status,
            ErrorStatus = errorStatus,
            ErrorCode = code,
            ErrorMessage = message,
            ServedModel = servedModel,
            ServedProvider = servedProvider,
        };

        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, _chat) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = JsonType;
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            status = (int)response.StatusCode;
            servedModel = Header(response, "x-shepherd-model");
            servedProvider = Header(response, "x-shepherd-provider");
            if (!response.IsSuccessStatusCode)
            {
                var (code, message) = await ReadErrorAsync(response, timeout.Token);
                return Failed(status.ToString(CultureInfo.InvariantCulture), code ?? $"http_{status}", message ?? $"HTTP {status}");
            }

            var isEventStream = response.Content.Headers.ContentType?.MediaType == "text/event-stream";
            var sample = stream && isEventStream
                ? await ReadStreamAsync(response, start, timeout.Token)
                : await ReadCompletionAsync(response, start, timeout.Token);
            return sample with { StartMs = startMs, Status = status, ServedModel = servedModel, ServedProvider = servedProvider };
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (OperationCanceledException)
        {
            return Failed("timeout", "timeout", $"no complete answer within {_timeout.TotalSeconds:0.###} s");
        }
        catch (HttpRequestException ex)
        {
            return Failed(status == 0 ? "network" : StreamOrNetwork(stream), SnakeCase(ex.HttpRequestError.ToString()), ex.Message);
        }
        catch (IOException ex)
        {
            return Failed(StreamOrNetwork(stream), "response_ended", ex.Message);
        }
        catch (InvalidDataException ex)
        {
            return Failed(StreamOrNetwork(stream), "bad_stream", ex.Message);
        }
    }

    private static string StreamOrNetwork(bool stream) => stream ? "stream" : "network";

    private static async Task<BenchSample> ReadCompletionAsync(HttpResponseMessage response, long start, CancellationToken cancellationToken)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        var latency = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        int? input = null;
        int? output = null;
        try
        {
            using var document = JsonDocument.Parse(bytes);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("choices", out _))
            {
                return Invalid(latency, "the answer is not a chat.completion object");
            }

            (input, output) = ReadUsage(root);
        }
        catch (JsonException)
        {
            return Invalid(latency, "the answer is not JSON");
        }

        return new BenchSample
        {
            StartMs = 0,
            LatencyMs = latency,
            Status = 0,
            InputTokens = input,
            OutputTokens = output,
            CostUsd = ParseCost(Header(response, "x-shepherd-cost-usd")),
        };
    }

    private static async Task<BenchSample> ReadStreamAsync(HttpResponseMessage response, long start, CancellationToken cancellationToken)
    {
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var reader = new SseReader(body);
        double? ttft = null;
        int? input = null;
        int? output = null;
        decimal? cost = null;
        var contentChunks = 0;
        while (await reader.ReadEventAsync(cancellationToken))
        {
            var data = reader.Data.Span;
            if (data.SequenceEqual("[DONE]"u8))
            {
                break;
            }

            try
            {
                using var document = JsonDocument.Parse(reader.Data);
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                {
                    return Invalid(Stopwatch.GetElapsedTime(start).TotalMilliseconds, "a stream chunk is not a JSON object", "stream");
                }

                if (root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
                {
                    var (code, message) = ReadError(error);
                    return new BenchSample
                    {
                        StartMs = 0,
                        LatencyMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds,
                        TtftMs = ttft,
                        Status = 0,
                        ErrorStatus = "stream",
                        ErrorCode = code ?? "stream_error",
                        ErrorMessage = message ?? "the stream failed",
                    };
                }

                if (HasContent(root))
                {
                    ttft ??= Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    contentChunks++;
                }

                if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                {
                    (input, output) = ReadUsage(root);
                }

                // Shepherd may add its own object to the final usage chunk; other relays do not, and that is fine.
                if (root.TryGetProperty("shepherd", out var shepherd) && shepherd.ValueKind == JsonValueKind.Object
                    && shepherd.TryGetProperty("cost_usd", out var costValue))
                {
                    cost = costValue.ValueKind switch
                    {
                        JsonValueKind.Number when costValue.TryGetDecimal(out var d) => d,
                        JsonValueKind.String => ParseCost(costValue.GetString()),
                        _ => cost,
                    };
                }
            }
            catch (JsonException)
            {
                return Invalid(Stopwatch.GetElapsedTime(start).TotalMilliseconds, "a stream chunk is not JSON", "stream");
            }
        }

        return new BenchSample
        {
            StartMs = 0,
            LatencyMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds,
            TtftMs = ttft,
            Status = 0,
            InputTokens = input,
            OutputTokens = output ?? contentChunks,
            OutputTokensCounted = output is null,
            CostUsd = cost,
        };
    }

    /// <summary>True when a chunk carries generated output: text, a refusal, reasoning or tool-call data.</summary>
    private static bool HasContent(JsonElement chunk)
    {
        if (!chunk.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array)
        {
            return false;
        }

        foreach (var choice in choices.EnumerateArray())
        {
            if (choice.ValueKind != JsonValueKind.Object || !choice.TryGetProperty("delta", out var delta) || delta.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            foreach (var field in new[] { "content", "refusal", "reasoning_content", "reasoning" })
            {
                if (delta.TryGetProperty(field, out var text) && text.ValueKind == JsonValueKind.String && text.GetString()!.Length > 0)
                {
                    return true;
                }
            }

            if (delta.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array && calls.GetArrayLength() > 0)
            {
                return true;
            }
        }

        return false;
    }

    private static (int? Input, int? Output) ReadUsage(JsonElement root)
    {
        if (!root.TryGetProperty("usage", out var usage) || usage.ValueKind != JsonValueKind.Object)
        {
            return (null, null);
        }

        static int? Number(JsonElement usage, string name) =>
            usage.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) ? n : null;
        return (Number(usage, "prompt_tokens"), Number(usage, "completion_tokens"));
    }

    private static BenchSample Invalid(double latency, string message, string errorStatus = "invalid") => new()
    {
        StartMs = 0,
        LatencyMs = latency,
        Status = 0,
        ErrorStatus = errorStatus,
        ErrorCode = "bad_response",
        ErrorMessage = message,
    };

    /// <summary>The <c>code</c> (else <c>type</c>) and <c>message</c> of an OpenAI error body; nulls when it is not one.</summary>
    private static async Task<(string? Code, string? Message)> ReadErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[MaxErrorBodyBytes];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = await body.ReadAsync(buffer.AsMemory(length), cancellationToken)) > 0)
        {
            length += read;
        }

        try
        {
            using var document = JsonDocument.Parse(buffer.AsMemory(0, length));
            if (document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("error", out var error))
            {
                return error.ValueKind switch
                {
                    JsonValueKind.Object => ReadError(error),
                    JsonValueKind.String => (null, error.GetString()),
                    _ => (null, null),
                };
            }
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's HTML page, say): show its start.
        }

        var text = Encoding.UTF8.GetString(buffer, 0, Math.Min(length, 200)).Trim();
        return (null, text.Length == 0 ? null : text);
    }

    private static (string? Code, string? Message) ReadError(JsonElement error)
    {
        static string? Text(JsonElement error, string name) =>
            error.TryGetProperty(name, out var value) ? value.ValueKind switch
            {
                JsonValueKind.String => value.GetString(),
                JsonValueKind.Number => value.GetRawText(),
                _ => null,
            } : null;
        return (Text(error, "code") ?? Text(error, "type"), Text(error, "message"));
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    private static decimal? ParseCost(string? text) =>
        decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var cost) ? cost : null;

    /// <summary><c>ConnectionError</c> → <c>connection_error</c>.</summary>
    private static string SnakeCase(string name)
    {
        var builder = new StringBuilder(name.Length + 4);
        foreach (var c in name)
        {
            if (char.IsUpper(c) && builder.Length > 0)
            {
                builder.Append('_');
            }

            builder.Append(char.ToLowerInvariant(c));
        }

        return builder.ToString();
    }

    public void Dispose() => _http.Dispose();
}
