namespace Shepherd.Providers.Shared;

using System.Net;
using System.Net.Http.Headers;
using Shepherd.Configuration;

/// <summary>Creates the one pooled <see cref="SocketsHttpHandler"/> a provider uses for all its requests.</summary>
public static class UpstreamHttp
{
    /// <param name="config">The provider entry.</param>
    /// <param name="propagateTrace">Send the current trace context upstream. Off by default: providers are third parties.</param>
    public static HttpMessageInvoker CreateInvoker(ProviderConfig config, bool propagateTrace = false)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromMilliseconds(config.Timeouts.ConnectMs),
            PooledConnectionLifetime = TimeSpan.FromSeconds(config.Connections.LifetimeS),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(config.Connections.IdleTimeoutS),
            MaxConnectionsPerServer = config.Connections.MaxPerServer > 0 ? config.Connections.MaxPerServer : int.MaxValue,
            EnableMultipleHttp2Connections = true,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            AllowAutoRedirect = false,
            // The body is relayed as it arrives; response headers are small.
            MaxResponseHeadersLength = 64,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(15),
        };

        // No traceparent/baggage to a third party unless telemetry.propagate asks for it.
        handler.ActivityHeadersPropagator = propagateTrace ? AttemptSpanPropagator.Instance : null;
        return new HttpMessageInvoker(handler, disposeHandler: true);
    }

    /// <summary>HTTP/2 only over TLS (h2c to a local server would fail); HTTP/1.1 otherwise.</summary>
    public static (Version Version, HttpVersionPolicy Policy) VersionFor(Uri baseUri, ProviderConfig config) =>
        baseUri.Scheme == Uri.UriSchemeHttps && config.Connections.Http2
            ? (HttpVersion.Version20, HttpVersionPolicy.RequestVersionOrLower)
            : (HttpVersion.Version11, HttpVersionPolicy.RequestVersionExact);

    /// <summary>Joins a base URL and a path without losing the base's path (<c>/v1</c>).</summary>
    public static Uri Combine(string baseUrl, string path) => new($"{baseUrl.TrimEnd('/')}/{path.TrimStart('/')}", UriKind.Absolute);

    public static readonly MediaTypeHeaderValue JsonContentType = new("application/json");

    /// <summary>Closes an unfinished response body at once, so the upstream stops generating.</summary>
    /// <remarks>
    /// Disposing an unfinished HTTP/1.1 body drains it first (up to 1 MiB or 2 s) to reuse the connection, and
    /// cancelling the request token no longer reaches a connection once its headers are in. A read that is
    /// cancelled while in flight, however, closes the connection (HTTP/2: resets the stream). So: consume what is
    /// already buffered, then cancel the first read that has to wait.
    /// </remarks>
    public static async ValueTask AbortAsync(Stream body)
    {
        var scratch = System.Buffers.ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            using var abort = new CancellationTokenSource();
            for (var i = 0; i < 256; i++)
            {
                var read = body.ReadAsync(scratch, abort.Token);
                if (!read.IsCompleted)
                {
                    abort.Cancel();
                    await read.ConfigureAwait(false);
                    return;
                }

                if (await read.ConfigureAwait(false) == 0)
                {
                    return; // the body had ended after all
                }
            }
        }
        catch (Exception)
        {
            // Cancelled, reset, already broken or disposed: the connection is closed either way, which was the point.
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(scratch);
        }
    }
}

/// <summary>Request content over bytes the caller owns (a pooled buffer): no copy, known length.</summary>
public sealed class BytesContent : HttpContent
{
    private readonly ReadOnlyMemory<byte> _bytes;

    public BytesContent(ReadOnlyMemory<byte> bytes)
    {
        _bytes = bytes;
        Headers.ContentType = UpstreamHttp.JsonContentType;
        Headers.ContentLength = bytes.Length;
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        stream.WriteAsync(_bytes).AsTask();

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken) =>
        stream.WriteAsync(_bytes, cancellationToken).AsTask();

    protected override void SerializeToStream(Stream stream, TransportContext? context, CancellationToken cancellationToken) =>
        stream.Write(_bytes.Span);

    protected override bool TryComputeLength(out long length)
    {
        length = _bytes.Length;
        return true;
    }
}

/// <summary>
/// W3C trace context for upstream requests, naming the gateway's attempt span as the parent. HttpClient starts its
/// own <c>HttpRequestOut</c> activity under the attempt span; that one is never exported, so naming it would leave the
/// upstream's spans under a parent no backend has.
/// </summary>
internal sealed class AttemptSpanPropagator : System.Diagnostics.DistributedContextPropagator
{
    public static readonly AttemptSpanPropagator Instance = new();

    private static readonly System.Diagnostics.DistributedContextPropagator W3C = CreateW3CPropagator();

    public override IReadOnlyCollection<string> Fields => W3C.Fields;

    public override void Inject(System.Diagnostics.Activity? activity, object? carrier, PropagatorSetterCallback? setter) =>
        W3C.Inject(activity is { OperationName: "System.Net.Http.HttpRequestOut", Parent: { } attempt } ? attempt : activity, carrier, setter);

    public override void ExtractTraceIdAndState(object? carrier, PropagatorGetterCallback? getter, out string? traceId, out string? traceState) =>
        W3C.ExtractTraceIdAndState(carrier, getter, out traceId, out traceState);

    public override IEnumerable<KeyValuePair<string, string?>>? ExtractBaggage(object? carrier, PropagatorGetterCallback? getter) =>
        W3C.ExtractBaggage(carrier, getter);
}
