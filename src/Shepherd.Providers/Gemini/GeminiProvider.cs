namespace Shepherd.Providers.Gemini;

using System.Collections.Concurrent;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Errors;
using Shepherd.Providers.Shared;

/// <summary>
/// Google's Gemini API (<c>generateContent</c> and <c>streamGenerateContent?alt=sse</c>, PROTOCOLS.md §3). The OpenAI
/// request is translated by <see cref="GeminiMapping"/>, the answer translated back, the stream decoded by
/// <see cref="GeminiStreamDecoder"/> and errors classified by <see cref="GeminiErrors"/>; this class only does HTTP.
/// </summary>
public sealed class GeminiProvider : IChatProvider, IProviderProbe, IDisposable
{
    /// <summary>Downloaded images of one request, in total (each is also limited to 20 MiB).</summary>
    internal const long MaxImageBytesPerRequest = 64L * 1024 * 1024;

    private readonly ProviderConfig _config;
    private readonly HttpMessageInvoker _http;
    private readonly ImageFetcher _images;
    private readonly TimeProvider _time;
    private readonly string _baseUrl;
    private readonly Version _version;
    private readonly HttpVersionPolicy _versionPolicy;
    private readonly TimeSpan _firstByte;
    private readonly TimeSpan _idle;
    private readonly ConcurrentDictionary<string, ModelUris> _uris = new(StringComparer.Ordinal);

    public GeminiProvider(ProviderConfig config, TimeProvider time, HttpMessageInvoker? http = null, ImageFetcher? images = null)
    {
        _config = config;
        _time = time;
        _http = http ?? UpstreamHttp.CreateInvoker(config);
        _images = images ?? new ImageFetcher();
        _baseUrl = (string.IsNullOrWhiteSpace(config.BaseUrl) ? ProviderTypes.DefaultBaseUrl(ProviderTypes.Gemini)! : config.BaseUrl).TrimEnd('/');
        (_version, _versionPolicy) = UpstreamHttp.VersionFor(new Uri(_baseUrl, UriKind.Absolute), config);
        _firstByte = TimeSpan.FromMilliseconds(config.Timeouts.ConnectMs + config.Timeouts.FirstByteMs);
        _idle = TimeSpan.FromMilliseconds(config.Timeouts.IdleMs);
    }

    public string Name => _config.Name;

    public string Type => ProviderTypes.Gemini;

    public ProviderCapabilities Capabilities { get; } = new(MultipleChoices: true, Images: true, Tools: true);

    public async ValueTask<UpstreamOutcome<ChatCompletion>> CompleteAsync(UpstreamCall call, CancellationToken cancellationToken)
    {
        using var body = new PooledBuffer(call.Request.Body.Length + 1024);
        if (await BuildBodyAsync(call.Request, body, cancellationToken).ConfigureAwait(false) is { } invalid)
        {
            return invalid;
        }

        // The timers start after the images are fetched: fetching has its own limits.
        using var cancel = new UpstreamCancellation(cancellationToken, _firstByte, _idle, _time);
        using var request = CreateRequest(UrisFor(call.UpstreamModel).Generate, body, call.ApiKey);
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
                return UpstreamExchange.IsSuccess(response!)
                    ? GeminiMapping.ToCompletion(answer!.WrittenMemory, Name, call.UpstreamModel, _time.GetUtcNow().ToUnixTimeSeconds(), call.ApiKey)
                    : GeminiErrors.Classify(Name, (int)response!.StatusCode, answer!.WrittenSpan, RetryAfter.From(response.Headers, _time.GetUtcNow()), call.ApiKey);
            }
        }
    }

    public async ValueTask<UpstreamOutcome<ChatStream>> StreamAsync(UpstreamCall call, CancellationToken cancellationToken)
    {
        var body = new PooledBuffer(call.Request.Body.Length + 1024);
        UpstreamCancellation? cancel = null;
        HttpResponseMessage? response = null;
        var handedOver = false;
        try
        {
            if (await BuildBodyAsync(call.Request, body, cancellationToken).ConfigureAwait(false) is { } invalid)
            {
                return invalid;
            }

            cancel = new UpstreamCancellation(cancellationToken, _firstByte, _idle, _time);
            using var request = CreateRequest(UrisFor(call.UpstreamModel).Stream, body, call.ApiKey);
            (response, var failure) = await UpstreamExchange.SendAsync(_http, request, cancel, Name).ConfigureAwait(false);
            if (failure is not null)
            {
                return failure;
            }

            if (!UpstreamExchange.IsSuccess(response!))
            {
                using var error = await UpstreamExchange.ReadErrorAsync(response!, cancel).ConfigureAwait(false);
                return GeminiErrors.Classify(Name, (int)response!.StatusCode, error.WrittenSpan, RetryAfter.From(response.Headers, _time.GetUtcNow()), call.ApiKey);
            }

            // Without alt=sse Gemini streams one JSON array; anything but an event stream cannot be decoded.
            if (UpstreamExchange.CheckEventStream(response!, Name) is { } notAStream)
            {
                return notAStream;
            }

            var stream = await response!.Content.ReadAsStreamAsync(cancel.Token).ConfigureAwait(false);
            var decoder = new GeminiStreamDecoder(Name, call.UpstreamModel, _time.GetUtcNow().ToUnixTimeSeconds(), call.ApiKey);
            var chatStream = new GeminiChatStream(Name, response, stream, cancel, decoder, body);
            handedOver = true;
            return UpstreamOutcome<ChatStream>.Success(chatStream);
        }
        catch (OperationCanceledException) when (cancel is not null && cancel.TimedOut)
        {
            return FailureClassifier.Timeout(Name, "no response headers");
        }
        finally
        {
            if (!handedOver)
            {
                response?.Dispose();
                body.Dispose();
                cancel?.Dispose();
            }
        }
    }

    /// <summary>Downloads remote images, then writes the Gemini body. Returns a caller fault when the request cannot be sent.</summary>
    private async ValueTask<UpstreamFailure?> BuildBodyAsync(ChatRequest request, PooledBuffer body, CancellationToken cancellationToken)
    {
        Dictionary<string, InlineImage>? images = null;
        var urls = GeminiMapping.RemoteImageUrls(request);
        if (urls.Count > 0)
        {
            images = new Dictionary<string, InlineImage>(StringComparer.Ordinal);
            var results = new ImageFetchResult[urls.Count];
            await Parallel.ForAsync(0, urls.Count, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken }, async (i, ct) =>
                results[i] = await _images.FetchAsync(urls[i], ct).ConfigureAwait(false)).ConfigureAwait(false);
            long total = 0;
            for (var i = 0; i < urls.Count; i++)
            {
                if (results[i].Error is { } error)
                {
                    return new UpstreamFailure(FailureClass.CallerFault, 400, error, "invalid_request_error", "invalid_image_url", "messages");
                }

                total += results[i].Image!.Base64Data.Length;
                images[urls[i]] = results[i].Image!;
            }

            if (total > MaxImageBytesPerRequest * 4 / 3)
            {
                return new UpstreamFailure(FailureClass.CallerFault, 400, "The images of this request are larger than 64 MiB in total.", "invalid_request_error", "invalid_image_url", "messages");
            }
        }

        return GeminiMapping.WriteRequest(request, images, body);
    }

    private HttpRequestMessage CreateRequest(Uri uri, PooledBuffer body, string apiKey)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, uri)
        {
            Version = _version,
            VersionPolicy = _versionPolicy,
            Content = new BytesContent(body.WrittenMemory),
        };
        if (apiKey.Length > 0)
        {
            request.Headers.TryAddWithoutValidation("x-goog-api-key", apiKey);
        }

        foreach (var (name, value) in _config.Headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }

    /// <summary>The two endpoints of a model, built once. A bare name (<c>gemini-2.5-flash</c>) is a <c>models/</c> resource;
    /// a full resource name (<c>tunedModels/x</c>) is used as it is. Each segment is URL-escaped.</summary>
    private ModelUris UrisFor(string model) => _uris.GetOrAdd(model, static (m, baseUrl) =>
    {
        var name = m.StartsWith("models/", StringComparison.Ordinal) ? m["models/".Length..] : m;
        var segments = name.Split('/');

        // A dot segment would be resolved away by Uri and reach another endpoint with our key: keep it one escaped name.
        var path = segments.Length > 1 && !segments.Any(s => s is "" or "." or "..")
            ? string.Join('/', segments.Select(s => Uri.EscapeDataString(s)))
            : "models/" + Uri.EscapeDataString(name);
        return new ModelUris(
            new Uri($"{baseUrl}/{path}:generateContent", UriKind.Absolute),
            new Uri($"{baseUrl}/{path}:streamGenerateContent?alt=sse", UriKind.Absolute));
    }, _baseUrl);

    /// <summary>GET {base_url}/models with the key.</summary>
    public ValueTask<UpstreamFailure?> ProbeAsync(string apiKey, CancellationToken cancellationToken) =>
        Probe.GetAsync(_http, new Uri($"{_baseUrl}/models", UriKind.Absolute), request =>
        {
            request.Headers.TryAddWithoutValidation("x-goog-api-key", apiKey);
        }, Name, cancellationToken);

    public void Dispose()
    {
        _http.Dispose();
        _images.Dispose();
    }

    private sealed record ModelUris(Uri Generate, Uri Stream);
}

/// <summary>Reads a Gemini SSE stream and yields the decoder's OpenAI chunks as they come.</summary>
internal sealed class GeminiChatStream : ChatStream
{
    private readonly string _provider;
    private readonly HttpResponseMessage _response;
    private readonly UpstreamCancellation _cancel;
    private readonly GeminiStreamDecoder _decoder;
    private readonly PooledBuffer _requestBody;
    private readonly SseReader _sse;
    private StreamEvent _current;
    private bool _ended;
    private bool _finished;

    public GeminiChatStream(string provider, HttpResponseMessage response, Stream body, UpstreamCancellation cancel, GeminiStreamDecoder decoder, PooledBuffer requestBody)
    {
        _provider = provider;
        _requestBody = requestBody;
        _response = response;
        _cancel = cancel;
        _decoder = decoder;
        _sse = new SseReader(body, cancel.Touch);
    }

    public override StreamEvent Current => _current;

    public override bool HasBufferedEvent => _decoder.HasPending || (!_ended && _sse.HasBufferedEvent);

    public override async ValueTask<bool> MoveNextAsync()
    {
        while (!_finished)
        {
            if (_decoder.TryNext(out _current))
            {
                return true;
            }

            if (_ended)
            {
                _finished = true;
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

            // Gemini ends a stream by closing it: that is when the held finish and the usage chunk are released.
            var failure = got ? _decoder.Feed(_sse.Data.Span) : _decoder.Complete();
            _ended = !got;
            if (failure is not null)
            {
                return Fail(failure);
            }
        }

        return false;
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
        if (!_ended)
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
