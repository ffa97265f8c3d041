namespace Shepherd.Webhooks.Processing;

using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;

/// <summary>What one attempt came to.</summary>
public enum AttemptVerdict
{
    Success,

    /// <summary>Worth trying again (rate limited, upstream trouble, network).</summary>
    Retry,

    /// <summary>Retrying cannot help (the request itself is wrong, or not allowed): straight to the dead letters.</summary>
    Dead,
}

/// <summary>The outcome of a model call through the gateway.</summary>
public sealed record GatewayCall(AttemptVerdict Verdict, int? Status, WebhookResult? Result, string? Error, TimeSpan? RetryAfter, TimeSpan Elapsed);

/// <summary>
/// Calls the gateway's own <c>/v1/chat/completions</c> over loopback, so a webhook's model call goes through exactly
/// the pipeline a client's does: authentication with the source's key, limits and budgets, routing, retries and
/// fallbacks, and the usage record.
/// </summary>
public sealed class LoopbackGateway : IDisposable
{
    private readonly HttpClient _http;
    private readonly TaskCompletionSource<Uri> _address = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public LoopbackGateway()
    {
        _http = new HttpClient(new SocketsHttpHandler
        {
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            UseCookies = false,
            AllowAutoRedirect = false,
            UseProxy = false,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    /// <summary>Where the gateway listens, once it does.</summary>
    public Task<Uri> Address => _address.Task;

    /// <summary>Takes the bound addresses (Kestrel's, port 0 resolved) and picks one to call: plain HTTP first, wildcards as loopback.</summary>
    /// <remarks>A gateway that listens on HTTPS only is called on HTTPS, so its certificate must be valid for the address (e.g. localhost).</remarks>
    public void SetAddresses(IEnumerable<string> addresses)
    {
        var candidates = addresses.Select(ToLoopback).Where(u => u is not null).Select(u => u!).ToList();
        var chosen = candidates.FirstOrDefault(u => u.Scheme == Uri.UriSchemeHttp) ?? candidates.FirstOrDefault();
        if (chosen is not null)
        {
            _address.TrySetResult(chosen);
        }
    }

    internal static Uri? ToLoopback(string address)
    {
        var text = address.Replace("://*:", "://127.0.0.1:", StringComparison.Ordinal)
            .Replace("://+:", "://127.0.0.1:", StringComparison.Ordinal)
            .Replace("://0.0.0.0:", "://127.0.0.1:", StringComparison.Ordinal)
            .Replace("://[::]:", "://[::1]:", StringComparison.Ordinal);
        return Uri.TryCreate(text.TrimEnd('/') + "/", UriKind.Absolute, out var uri) ? uri : null;
    }

    /// <summary>Sends one non-streamed Chat Completions request and classifies the answer.</summary>
    public async Task<GatewayCall> CompleteAsync(byte[] body, string bearer, string requestId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var address = await Address.WaitAsync(cancellationToken).ConfigureAwait(false);
        var started = Stopwatch.GetTimestamp();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, "v1/chat/completions"))
        {
            Content = new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        request.Headers.TryAddWithoutValidation("x-request-id", requestId);
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, deadline.Token).ConfigureAwait(false);
            var bytes = await response.Content.ReadAsByteArrayAsync(deadline.Token).ConfigureAwait(false);
            var elapsed = Stopwatch.GetElapsedTime(started);
            var status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode)
            {
                return ParseSuccess(response, bytes, requestId, elapsed);
            }

            var error = $"{status} {ErrorMessage(bytes)}";
            return new GatewayCall(Classify(status), status, null, error, RetryAfterOf(response), elapsed);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new GatewayCall(AttemptVerdict.Retry, null, null, $"timed out after {timeout.TotalSeconds:F0} s", null, Stopwatch.GetElapsedTime(started));
        }
        catch (HttpRequestException ex)
        {
            return new GatewayCall(AttemptVerdict.Retry, null, null, $"the gateway could not be reached: {ex.Message}", null, Stopwatch.GetElapsedTime(started));
        }
    }

    /// <summary>Caller faults (the rendered request is invalid, or the key may not make it) are not retried.</summary>
    public static AttemptVerdict Classify(int status) => status switch
    {
        400 or 401 or 403 or 404 or 405 or 413 or 415 or 422 => AttemptVerdict.Dead,
        _ => AttemptVerdict.Retry,
    };

    /// <summary><c>retry-after-ms</c>, else <c>retry-after</c> (seconds or an HTTP date).</summary>
    public static TimeSpan? RetryAfterOf(HttpResponseMessage response)
    {
        if (response.Headers.TryGetValues("retry-after-ms", out var ms) &&
            double.TryParse(ms.FirstOrDefault(), NumberStyles.Float, CultureInfo.InvariantCulture, out var milliseconds) && milliseconds >= 0)
        {
            return TimeSpan.FromMilliseconds(Math.Min(milliseconds, TimeSpan.FromDays(1).TotalMilliseconds));
        }

        if (response.Headers.RetryAfter is { } retryAfter)
        {
            if (retryAfter.Delta is { } delta)
            {
                return delta;
            }

            if (retryAfter.Date is { } date)
            {
                var wait = date - DateTimeOffset.UtcNow;
                return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
            }
        }

        return null;
    }

    private static GatewayCall ParseSuccess(HttpResponseMessage response, byte[] bytes, string requestId, TimeSpan elapsed)
    {
        try
        {
            using var document = JsonDocument.Parse(bytes);
            var root = document.RootElement;
            var text = "";
            string? finish = null;
            if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0)
            {
                var choice = choices[0];
                if (choice.TryGetProperty("message", out var message) && message.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
                {
                    text = content.GetString()!;
                }

                if (choice.TryGetProperty("finish_reason", out var reason) && reason.ValueKind == JsonValueKind.String)
                {
                    finish = reason.GetString();
                }
            }

            int prompt = 0, completion = 0;
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
            {
                prompt = usage.TryGetProperty("prompt_tokens", out var p) && p.TryGetInt32(out var pv) ? pv : 0;
                completion = usage.TryGetProperty("completion_tokens", out var c) && c.TryGetInt32(out var cv) ? cv : 0;
            }

            var model = Header(response, "x-shepherd-model") ?? (root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : "");
            var cost = decimal.TryParse(Header(response, "x-shepherd-cost-usd"), NumberStyles.Float, CultureInfo.InvariantCulture, out var usd) ? usd : 0m;
            var result = new WebhookResult
            {
                Model = model,
                Text = text,
                FinishReason = finish,
                PromptTokens = prompt,
                CompletionTokens = completion,
                CostUsd = cost,
                LatencyMs = elapsed.TotalMilliseconds,
                RequestId = Header(response, "x-request-id") ?? requestId,
            };
            return new GatewayCall(AttemptVerdict.Success, (int)response.StatusCode, result, null, null, elapsed);
        }
        catch (JsonException)
        {
            return new GatewayCall(AttemptVerdict.Retry, (int)response.StatusCode, null, "the gateway's answer was not JSON", null, elapsed);
        }
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    /// <summary>The OpenAI error's code and message, or the start of whatever came back.</summary>
    internal static string ErrorMessage(byte[] bytes)
    {
        try
        {
            using var document = JsonDocument.Parse(bytes);
            if (document.RootElement.ValueKind == JsonValueKind.Object &&
                document.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
            {
                var code = error.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
                var message = error.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
                return code is null ? message ?? "" : $"{code}: {message}";
            }
        }
        catch (JsonException)
        {
        }

        var text = System.Text.Encoding.UTF8.GetString(bytes.AsSpan(0, Math.Min(bytes.Length, 300)));
        return text.ReplaceLineEndings(" ");
    }

    public void Dispose() => _http.Dispose();
}
