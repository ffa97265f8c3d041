namespace Shepherd.Providers.Anthropic;

using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Errors;
using Shepherd.Providers.Shared;

/// <summary>
/// Anthropic's Messages API (<c>POST {base_url}/v1/messages</c>). Requests are translated by
/// <see cref="AnthropicMapping"/>, answers back to OpenAI's format, streams event by event by
/// <see cref="AnthropicStreamDecoder"/>, and failures classified by <see cref="AnthropicErrors"/>.
/// </summary>
public sealed class AnthropicProvider : IChatProvider, IProviderProbe, IDisposable
{
    private readonly ProviderConfig _config;
    private readonly HttpMessageInvoker _http;
    private readonly TimeProvider _time;
    private readonly Uri _messagesUri;
    private readonly Version _version;
    private readonly HttpVersionPolicy _versionPolicy;
    private readonly TimeSpan _firstByte;
    private readonly TimeSpan _idle;

    public AnthropicProvider(ProviderConfig config, TimeProvider time, HttpMessageInvoker? http = null)
    {
        _config = config;
        _time = time;
        _http = http ?? UpstreamHttp.CreateInvoker(config);
        _messagesUri = MessagesUri(string.IsNullOrWhiteSpace(config.BaseUrl) ? ProviderTypes.DefaultBaseUrl(ProviderTypes.Anthropic)! : config.BaseUrl);
        (_version, _versionPolicy) = UpstreamHttp.VersionFor(_messagesUri, config);
        _firstByte = TimeSpan.FromMilliseconds(config.Timeouts.ConnectMs + config.Timeouts.FirstByteMs);
        _idle = TimeSpan.FromMilliseconds(config.Timeouts.IdleMs);
    }

    public string Name => _config.Name;

    public string Type => ProviderTypes.Anthropic;

    /// <summary>Anthropic has no <c>n</c>: the server refuses n &gt; 1 before calling.</summary>
    public ProviderCapabilities Capabilities { get; } = new(MultipleChoices: false, Images: true, Tools: true);

    /// <summary>The messages endpoint: <c>/v1/messages</c> under the base URL, which may already end in <c>/v1</c>.</summary>
    internal static Uri MessagesUri(string baseUrl)
    {
        var trimmed = baseUrl.TrimEnd('/');
        return UpstreamHttp.Combine(trimmed, trimmed.EndsWith("/v1", StringComparison.OrdinalIgnoreCase) ? "messages" : "v1/messages");
    }

    public async ValueTask<UpstreamOutcome<ChatCompletion>> CompleteAsync(UpstreamCall call, CancellationToken cancellationToken)
    {
        using var body = new PooledBuffer(call.Request.Body.Length + 512);
        using var cancel = new UpstreamCancellation(cancellationToken, _firstByte, _idle, _time);
        if (AnthropicMapping.WriteRequest(call, stream: false, body, out var jsonToolName) is { } refused)
        {
            return refused;
        }

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

            using (answer)
            {
                if (!UpstreamExchange.IsSuccess(response!))
                {
                    return AnthropicErrors.Classify(Name, (int)response!.StatusCode, answer!.WrittenSpan, RetryAfter.From(response.Headers, _time.GetUtcNow()), call.ApiKey);
                }

                if (!AnthropicMapping.TryTranslateResponse(answer!.WrittenSpan, jsonToolName, _time.GetUtcNow().ToUnixTimeSeconds(), call.UpstreamModel, out var json, out var usage, out var usageMissing))
                {
                    // A 200 carrying an error object (some proxies do this) is still an error.
                    var fields = AnthropicErrors.Read(answer.WrittenSpan);
                    return fields.Type is not null
                        ? AnthropicErrors.ClassifyStreamError(Name, answer.WrittenSpan, call.ApiKey)
                        : FailureClassifier.Unusable(Name, "not an Anthropic message");
                }

                return UpstreamOutcome<ChatCompletion>.Success(new ChatCompletion(json, usage) { UsageMissing = usageMissing });
            }
        }
    }

    public async ValueTask<UpstreamOutcome<ChatStream>> StreamAsync(UpstreamCall call, CancellationToken cancellationToken)
    {
        var body = new PooledBuffer(call.Request.Body.Length + 512);
        var cancel = new UpstreamCancellation(cancellationToken, _firstByte, _idle, _time);
        HttpResponseMessage? response = null;
        var handedOver = false;
        try
        {
            if (AnthropicMapping.WriteRequest(call, stream: true, body, out var jsonToolName) is { } refused)
            {
                return refused;
            }

            using var request = CreateRequest(body, call.ApiKey);
            (response, var failure) = await UpstreamExchange.SendAsync(_http, request, cancel, Name).ConfigureAwait(false);
            if (failure is not null)
            {
                return failure;
            }

            if (!UpstreamExchange.IsSuccess(response!))
            {
                using var error = await UpstreamExchange.ReadErrorAsync(response!, cancel).ConfigureAwait(false);
                return AnthropicErrors.Classify(Name, (int)response!.StatusCode, error.WrittenSpan, RetryAfter.From(response.Headers, _time.GetUtcNow()), call.ApiKey);
            }

            if (UpstreamExchange.CheckEventStream(response!, Name) is { } notAStream)
            {
                return notAStream;
            }

            var stream = await response!.Content.ReadAsStreamAsync(cancel.Token).ConfigureAwait(false);
            var decoder = new AnthropicStreamDecoder(Name, call.ApiKey, _time.GetUtcNow().ToUnixTimeSeconds(), call.UpstreamModel, jsonToolName);
            var chatStream = new AnthropicChatStream(Name, response, stream, cancel, body, decoder);
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
        var request = new HttpRequestMessage(HttpMethod.Post, _messagesUri)
        {
            Version = _version,
            VersionPolicy = _versionPolicy,
            Content = new BytesContent(body.WrittenMemory),
        };
        if (apiKey.Length > 0)
        {
            request.Headers.TryAddWithoutValidation("x-api-key", apiKey);
        }

        request.Headers.TryAddWithoutValidation("anthropic-version", _config.AnthropicVersion);
        foreach (var (name, value) in _config.Headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }

    /// <summary>GET /v1/models with the key.</summary>
    public ValueTask<UpstreamFailure?> ProbeAsync(string apiKey, CancellationToken cancellationToken) =>
        Probe.GetAsync(_http, new Uri(_messagesUri, "models"), request =>
        {
            request.Headers.TryAddWithoutValidation("x-api-key", apiKey);
            request.Headers.TryAddWithoutValidation("anthropic-version", _config.AnthropicVersion);
        }, Name, cancellationToken);

    public void Dispose() => _http.Dispose();
}

/// <summary>Reads an Anthropic event stream and hands out the OpenAI chunks its decoder makes.</summary>
internal sealed class AnthropicChatStream : ChatStream
{
    private readonly string _provider;
    private readonly HttpResponseMessage _response;
    private readonly UpstreamCancellation _cancel;
    private readonly PooledBuffer _requestBody;
    private readonly AnthropicStreamDecoder _decoder;
    private readonly SseReader _sse;
    private StreamEvent _current;
    private bool _finished;

    public AnthropicChatStream(string provider, HttpResponseMessage response, Stream body, UpstreamCancellation cancel, PooledBuffer requestBody, AnthropicStreamDecoder decoder)
    {
        _provider = provider;
        _response = response;
        _cancel = cancel;
        _requestBody = requestBody;
        _decoder = decoder;
        _sse = new SseReader(body, cancel.Touch);
    }

    public override StreamEvent Current => _current;

    /// <summary>Only the usage chunk that follows a finish is certain to come without a read: a buffered SSE event may be a
    /// ping or a block stop that yields nothing, and holding back the flush for it would delay the last text until the
    /// upstream's next event.</summary>
    public override bool HasBufferedEvent => _decoder.HasPending;

    public override async ValueTask<bool> MoveNextAsync()
    {
        if (_finished)
        {
            return false;
        }

        if (_decoder.TryTakePending(out _current))
        {
            return true;
        }

        if (_decoder.Completed)
        {
            // message_stop was the end; whatever the upstream still sends is not read.
            _finished = true;
            return false;
        }

        while (true)
        {
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
                return Fail(FailureClassifier.Unusable(_provider, "the stream ended before message_stop"));
            }

            if (_decoder.TryDecode(_sse.EventName.Span, _sse.Data.Span, out _current))
            {
                _finished = _current.Kind == StreamEventKind.Error;
                return true;
            }
        }
    }

    private bool Fail(UpstreamFailure failure)
    {
        _finished = true;
        _current = StreamEvent.Error(failure);
        return true;
    }

    public override ValueTask DisposeAsync()
    {
        // Cancel first: an unread HTTP/1.1 body is then aborted, not drained, so the upstream sees the disconnect.
        if (!_finished || !_decoder.Completed)
        {
            _cancel.Cancel();
        }

        _response.Dispose();
        _sse.Dispose();
        _requestBody.Dispose();
        _cancel.Dispose();
        return ValueTask.CompletedTask;
    }
}
