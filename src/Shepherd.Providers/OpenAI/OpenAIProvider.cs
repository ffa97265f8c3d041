namespace Shepherd.Providers.OpenAI;

using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Errors;
using Shepherd.Providers.Shared;

/// <summary>
/// Any OpenAI-compatible server (OpenAI, DeepSeek, vLLM, Ollama, …). The request is the client's bytes with the
/// model spliced in; the answer and every stream chunk are relayed as they arrive, only inspected for usage.
/// </summary>
public sealed class OpenAIProvider : IChatProvider, IProviderProbe, IDisposable
{
    private readonly ProviderConfig _config;
    private readonly HttpMessageInvoker _http;
    private readonly TimeProvider _time;
    private readonly Uri _chatUri;
    private readonly Version _version;
    private readonly HttpVersionPolicy _versionPolicy;
    private readonly TimeSpan _firstByte;
    private readonly TimeSpan _idle;
    private readonly bool _developerAsSystem;
    private readonly ConcurrentDictionary<string, byte[]> _modelJson = new(StringComparer.Ordinal);

    public OpenAIProvider(ProviderConfig config, TimeProvider time, HttpMessageInvoker? http = null)
    {
        _config = config;
        _time = time;
        _http = http ?? UpstreamHttp.CreateInvoker(config);
        _chatUri = UpstreamHttp.Combine(config.BaseUrl!, "chat/completions");
        (_version, _versionPolicy) = UpstreamHttp.VersionFor(_chatUri, config);
        _firstByte = TimeSpan.FromMilliseconds(config.Timeouts.ConnectMs + config.Timeouts.FirstByteMs);
        _idle = TimeSpan.FromMilliseconds(config.Timeouts.IdleMs);
        _developerAsSystem = SendsDeveloperAsSystem(config.DeveloperRole, _chatUri);
    }

    /// <summary><c>developer_role</c> when set; otherwise only OpenAI's own hosts get the <c>developer</c> role as is.</summary>
    internal static bool SendsDeveloperAsSystem(string? developerRole, Uri chatUri) => developerRole switch
    {
        "keep" => false,
        "system" => true,
        _ => !IsHost(chatUri, "openai.com") && !IsHost(chatUri, "openai.azure.com"),
    };

    // The host itself or a subdomain: "notopenai.com" is not OpenAI.
    private static bool IsHost(Uri uri, string domain) =>
        uri.Host.Equals(domain, StringComparison.OrdinalIgnoreCase) ||
        uri.Host.EndsWith("." + domain, StringComparison.OrdinalIgnoreCase);

    public string Name => _config.Name;

    public string Type => ProviderTypes.OpenAI;

    public ProviderCapabilities Capabilities { get; } = new(MultipleChoices: true, Images: true, Tools: true);

    public async ValueTask<UpstreamOutcome<ChatCompletion>> CompleteAsync(UpstreamCall call, CancellationToken cancellationToken)
    {
        using var body = new PooledBuffer(call.Request.Body.Length + 256);
        using var cancel = new UpstreamCancellation(cancellationToken, _firstByte, _idle, _time);
        OpenAIRequestRewriter.Write(call.Request, ModelJson(call.UpstreamModel), _developerAsSystem, body);
        using var request = CreateRequest(body, call.ApiKey);
        var (response, failure) = await UpstreamExchange.SendAsync(_http, request, cancel, Name).ConfigureAwait(false);
        if (failure is not null)
        {
            return failure;
        }

        using (response)
        {
            var (answer, unreadable) = await UpstreamExchange.ReadAnswerAsync(response!, cancel, Name).ConfigureAwait(false);
            if (unreadable is not null)
            {
                return unreadable;
            }

            var owned = false;
            try
            {
                if (!UpstreamExchange.IsSuccess(response!))
                {
                    return OpenAIErrors.Classify(Name, (int)response!.StatusCode, answer!.WrittenSpan, RetryAfter.From(response.Headers, _time.GetUtcNow()), call.ApiKey);
                }

                var info = OpenAIWire.InspectCompletion(answer!.WrittenSpan);
                if (!info.IsValid || info.IsError || !info.HasChoices)
                {
                    return info.IsError
                        ? OpenAIErrors.Classify(Name, 502, answer.WrittenSpan, null, call.ApiKey) with { Class = FailureClass.Transient }
                        : FailureClassifier.Unusable(Name, "not a chat.completion object");
                }

                // The relayed bytes are the upstream's own: the completion owns the pooled buffer from here.
                owned = true;
                return UpstreamOutcome<ChatCompletion>.Success(new ChatCompletion(answer.WrittenMemory, info.Usage ?? default, answer.Dispose) { UsageMissing = info.Usage is null });
            }
            finally
            {
                if (!owned)
                {
                    answer!.Dispose();
                }
            }
        }
    }

    public async ValueTask<UpstreamOutcome<ChatStream>> StreamAsync(UpstreamCall call, CancellationToken cancellationToken)
    {
        var body = new PooledBuffer(call.Request.Body.Length + 256);
        var cancel = new UpstreamCancellation(cancellationToken, _firstByte, _idle, _time);
        HttpResponseMessage? response = null;
        var handedOver = false;
        try
        {
            OpenAIRequestRewriter.Write(call.Request, ModelJson(call.UpstreamModel), _developerAsSystem, body);
            using var request = CreateRequest(body, call.ApiKey);
            (response, var failure) = await UpstreamExchange.SendAsync(_http, request, cancel, Name).ConfigureAwait(false);
            if (failure is not null)
            {
                return failure;
            }

            if (!UpstreamExchange.IsSuccess(response!))
            {
                using var error = await UpstreamExchange.ReadErrorAsync(response!, cancel).ConfigureAwait(false);
                return OpenAIErrors.Classify(Name, (int)response!.StatusCode, error.WrittenSpan, RetryAfter.From(response.Headers, _time.GetUtcNow()), call.ApiKey);
            }

            if (UpstreamExchange.CheckEventStream(response!, Name) is { } notAStream)
            {
                return notAStream;
            }

            var stream = await response!.Content.ReadAsStreamAsync(cancel.Token).ConfigureAwait(false);
            var chatStream = new OpenAIChatStream(Name, response, stream, cancel, body, call.ApiKey);
            handedOver = true;
            return UpstreamOutcome<ChatStream>.Success(chatStream);
        }
        catch (OperationCanceledException) when (cancel.TimedOut)
        {
            return FailureClassifier.Timeout(Name, "no response headers");
        }
        finally
        {
            if (!handedOver)
            {
                response?.Dispose();
                body.Dispose();
                cancel.Dispose();
            }
        }
    }

    private HttpRequestMessage CreateRequest(PooledBuffer body, string apiKey)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, _chatUri)
        {
            Version = _version,
            VersionPolicy = _versionPolicy,
            Content = new BytesContent(body.WrittenMemory),
        };
        if (apiKey.Length > 0)
        {
            request.Headers.TryAddWithoutValidation("Authorization", string.Concat("Bearer ", apiKey));
        }

        foreach (var (name, value) in _config.Headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }

    private byte[] ModelJson(string model) =>
        _modelJson.GetOrAdd(model, static m => JsonSerializer.SerializeToUtf8Bytes(m, ProviderJsonContext.Default.String));

    /// <summary>GET {base_url}/models with the key.</summary>
    public ValueTask<UpstreamFailure?> ProbeAsync(string apiKey, CancellationToken cancellationToken) =>
        Probe.GetAsync(_http, UpstreamHttp.Combine(_config.BaseUrl!, "models"), request =>
        {
            if (apiKey.Length > 0)
            {
                request.Headers.TryAddWithoutValidation("Authorization", string.Concat("Bearer ", apiKey));
            }

            foreach (var (name, value) in _config.Headers)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
        }, Name, cancellationToken);

    public void Dispose() => _http.Dispose();
}

/// <summary>Relays an OpenAI SSE stream chunk by chunk, reading usage and finish as they pass.</summary>
internal sealed class OpenAIChatStream : ChatStream
{
    private static readonly byte[] Done = "[DONE]"u8.ToArray();

    private readonly string _provider;
    private readonly HttpResponseMessage _response;
    private readonly UpstreamCancellation _cancel;
    private readonly PooledBuffer _requestBody;
    private readonly string _apiKey;
    private readonly SseReader _sse;
    private readonly Stream _body;
    private StreamEvent _current;
    private bool _finished;
    private bool _sawFinish;

    // The upstream body reached its end ([DONE] or EOF): the connection may be drained and reused.
    private bool _endReached;
    private bool _disposed;

    public OpenAIChatStream(string provider, HttpResponseMessage response, Stream body, UpstreamCancellation cancel, PooledBuffer requestBody, string apiKey)
    {
        _provider = provider;
        _response = response;
        _cancel = cancel;
        _requestBody = requestBody;
        _apiKey = apiKey;
        _body = body;
        _sse = new SseReader(body, cancel.Touch);
    }

    public override StreamEvent Current => _current;

    public override bool HasBufferedEvent => _sse.HasBufferedEvent;

    public override async ValueTask<bool> MoveNextAsync()
    {
        if (_finished)
        {
            return false;
        }

        bool got;
        try
        {
            got = await _sse.ReadEventAsync(_cancel.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_cancel.TimedOut)
        {
            return Fail(_sse.BytesReceived == 0
                ? FailureClassifier.Timeout(_provider, "no first token")
                : FailureClassifier.Timeout(_provider, "the stream stalled"));
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException && !_cancel.ClientGone)
        {
            return Fail(FailureClassifier.Unusable(_provider, "the connection dropped mid-stream"));
        }
        catch (InvalidDataException)
        {
            return Fail(FailureClassifier.Unusable(_provider, "an event larger than 16 MiB"));
        }

        if (!got)
        {
            _finished = true;
            _endReached = true;
            if (_sawFinish)
            {
                return false;
            }

            _current = StreamEvent.Error(FailureClassifier.Unusable(_provider, "the stream ended before the answer was complete"));
            return true;
        }

        var data = _sse.Data;
        if (data.Span.SequenceEqual(Done))
        {
            _finished = true;
            _endReached = true;
            return false;
        }

        OpenAIWire.ChunkInfo info;
        try
        {
            info = OpenAIWire.InspectChunk(data.Span);
        }
        catch (JsonException)
        {
            return Fail(FailureClassifier.Unusable(_provider, "a malformed stream chunk"));
        }

        if (info.IsError)
        {
            var failure = OpenAIErrors.Classify(_provider, 500, data.Span, null, _apiKey);
            return Fail(failure.Class == FailureClass.CallerFault ? failure with { Class = FailureClass.Transient } : failure);
        }

        _sawFinish |= info.HasFinish;
        _current = StreamEvent.Chunk(data, info.HasContent, info.Usage, info.UsageOnly);
        return true;
    }

    private bool Fail(UpstreamFailure failure)
    {
        _finished = true;
        _current = StreamEvent.Error(failure);
        return true;
    }

    public override async ValueTask DisposeAsync()
    {
        // An unfinished body (client gone, or the stream ended in an error such as a malformed chunk) is aborted, not
        // drained: the upstream may still be generating, and draining keeps it going (and billing) for nobody.
        if (!_endReached && !_disposed)
        {
            _cancel.Cancel();
            await UpstreamHttp.AbortAsync(_body).ConfigureAwait(false);
        }

        _disposed = true;
        _response.Dispose();
        _sse.Dispose();
        _requestBody.Dispose();
        _cancel.Dispose();
    }
}
