namespace Shepherd.Providers.Gemini;

using System.Net;
using System.Net.Sockets;

/// <summary>Image bytes to send inline: a MIME type and the base64 data.</summary>
public sealed record InlineImage(string MimeType, string Base64Data);

/// <summary>The outcome of fetching one image: the image, or a message for the client.</summary>
public readonly record struct ImageFetchResult(InlineImage? Image, string? Error);

/// <summary>
/// Downloads <c>https://</c> image URLs so they can be sent to Gemini as <c>inlineData</c> (PROTOCOLS.md §4.2: Gemini's
/// <c>fileData</c> takes only Files API or GCS URIs).
/// </summary>
/// <remarks>
/// The URL comes from the client, so this is a server-side request forgery risk. The guard is at connect time:
/// every address a host resolves to is checked in <see cref="SocketsHttpHandler.ConnectCallback"/> and only public
/// ones are dialled, which also covers redirects and DNS rebinding (a check before the request would not). No proxy
/// is used (it would dial instead of us). Limits: https only, 20 MiB, 10 s, 3 redirects.
/// </remarks>
public sealed class ImageFetcher : IDisposable
{
    public const int MaxImageBytes = 20 * 1024 * 1024;

    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private readonly HttpMessageInvoker _http;
    private readonly Func<IPAddress, bool> _isForbidden;
    private readonly bool _requireHttps;
    private readonly TimeSpan _timeout;
    private readonly int _maxBytes;

    public ImageFetcher()
        : this(IsForbidden, requireHttps: true, DefaultTimeout, MaxImageBytes)
    {
    }

    /// <summary>For tests: another address rule (to reach a loopback fake), plain http, other limits.</summary>
    internal ImageFetcher(Func<IPAddress, bool> isForbidden, bool requireHttps, TimeSpan timeout, int maxBytes)
    {
        _isForbidden = isForbidden;
        _requireHttps = requireHttps;
        _timeout = timeout;
        _maxBytes = maxBytes;
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = true,
            MaxAutomaticRedirections = 3,
            AutomaticDecompression = DecompressionMethods.All,
            ConnectTimeout = timeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            ConnectCallback = ConnectAsync,
        };
        handler.ActivityHeadersPropagator = null;
        _http = new HttpMessageInvoker(handler, disposeHandler: true);
    }

    public async ValueTask<ImageFetchResult> FetchAsync(string url, CancellationToken cancellationToken)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) ||
            !(uri.Scheme == Uri.UriSchemeHttps || (!_requireHttps && uri.Scheme == Uri.UriSchemeHttp)))
        {
            return Fail(url, "only https:// image URLs (or data: URIs) can be used with this model");
        }

        if (IPAddress.TryParse(uri.IdnHost, out var literal) && _isForbidden(literal))
        {
            return Fail(url, "it points to a private, loopback or link-local address");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, uri);
            request.Headers.TryAddWithoutValidation("Accept", "image/*");
            request.Headers.TryAddWithoutValidation("User-Agent", "Shepherd-Gateway/1 (image fetch)");
            using var response = await _http.SendAsync(request, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return Fail(url, $"the server answered HTTP {(int)response.StatusCode}");
            }

            if (response.Content.Headers.ContentLength > _maxBytes)
            {
                return Fail(url, $"the image is larger than {_maxBytes / (1024 * 1024)} MiB");
            }

            var bytes = await ReadAsync(response.Content, timeout.Token).ConfigureAwait(false);
            if (bytes is null)
            {
                return Fail(url, $"the image is larger than {_maxBytes / (1024 * 1024)} MiB");
            }

            var mediaType = response.Content.Headers.ContentType?.MediaType;
            var mime = mediaType is not null && mediaType.StartsWith("image/", StringComparison.OrdinalIgnoreCase)
                ? mediaType.ToLowerInvariant()
                : SniffImageType(bytes);
            if (mime is null)
            {
                return Fail(url, $"it is not an image ({mediaType ?? "no content type"})");
            }

            return new ImageFetchResult(new InlineImage(mime, Convert.ToBase64String(bytes)), null);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return Fail(url, $"it did not download within {_timeout.TotalSeconds:0} seconds");
        }
        catch (HttpRequestException ex) when (FindForbidden(ex) is not null)
        {
            return Fail(url, "it points to a private, loopback or link-local address");
        }
        catch (HttpRequestException ex)
        {
            return Fail(url, ex.HttpRequestError switch
            {
                HttpRequestError.NameResolutionError => "its host name could not be resolved",
                HttpRequestError.SecureConnectionError => "a secure connection could not be established",
                _ => "it could not be downloaded",
            });
        }
        catch (IOException)
        {
            return Fail(url, "the connection failed while downloading it");
        }
    }

    private async Task<byte[]?> ReadAsync(HttpContent content, CancellationToken cancellationToken)
    {
        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var memory = new MemoryStream(content.Headers.ContentLength is { } length and > 0 ? (int)length : 64 * 1024);
            var buffer = new byte[81920];
            while (true)
            {
                var read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return memory.ToArray();
                }

                if (memory.Length + read > _maxBytes)
                {
                    return null;
                }

                memory.Write(buffer, 0, read);
            }
        }
    }

    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var host = context.DnsEndPoint.Host;
        var addresses = IPAddress.TryParse(host, out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        var allowed = Array.FindAll(addresses, a => !_isForbidden(a));
        if (allowed.Length == 0)
        {
            throw new ForbiddenAddressException();
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(allowed, context.DnsEndPoint.Port, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static ForbiddenAddressException? FindForbidden(Exception ex)
    {
        for (var inner = ex; inner is not null; inner = inner.InnerException)
        {
            if (inner is ForbiddenAddressException forbidden)
            {
                return forbidden;
            }
        }

        return null;
    }

    private static ImageFetchResult Fail(string url, string why)
    {
        var shown = url.Length > 100 ? url[..100] + "…" : url;
        return new ImageFetchResult(null, $"The image at '{shown}' could not be used: {why}.");
    }

    /// <summary>True for every address a server-side fetch must never reach: loopback, private, link-local,
    /// carrier-grade NAT, unspecified, multicast, reserved and documentation ranges, in IPv4 and IPv6 (mapped ones too).</summary>
    public static bool IsForbidden(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> b = stackalloc byte[4];
            address.TryWriteBytes(b, out _);
            return b[0] switch
            {
                0 or 10 or 127 => true,                        // "this network", private, loopback
                100 => b[1] is >= 64 and <= 127,               // carrier-grade NAT
                169 => b[1] == 254,                            // link-local (cloud metadata)
                172 => b[1] is >= 16 and <= 31,                // private
                192 => (b[1] == 168) || (b[1] == 0 && b[2] is 0 or 2) || (b[1] == 88 && b[2] == 99), // private, IETF, TEST-NET-1, 6to4 relay
                198 => b[1] is 18 or 19 || (b[1] == 51 && b[2] == 100), // benchmarking, TEST-NET-2
                203 => b[1] == 0 && b[2] == 113,               // TEST-NET-3
                >= 224 => true,                                // multicast, reserved, broadcast
                _ => false,
            };
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return true;
        }

        if (address.Equals(IPAddress.IPv6Loopback) || address.Equals(IPAddress.IPv6None) ||
            address.IsIPv6LinkLocal || address.IsIPv6SiteLocal || address.IsIPv6Multicast)
        {
            return true;
        }

        Span<byte> v6 = stackalloc byte[16];
        address.TryWriteBytes(v6, out _);
        if ((v6[0] & 0xFE) == 0xFC)
        {
            return true; // unique local fc00::/7
        }

        // Addresses that embed an IPv4 one: NAT64 64:ff9b::/96, IPv4-compatible ::/96, 6to4 2002::/16.
        if (v6[0] == 0x00 && v6[1] == 0x64 && v6[2] == 0xFF && v6[3] == 0x9B && v6[4..12].IndexOfAnyExcept((byte)0) < 0)
        {
            return IsForbidden(new IPAddress(v6[12..16]));
        }

        if (v6[..12].IndexOfAnyExcept((byte)0) < 0)
        {
            return true;
        }

        if (v6[0] == 0x20 && v6[1] == 0x02)
        {
            return IsForbidden(new IPAddress(v6[2..6]));
        }

        // Documentation 2001:db8::/32.
        return v6[0] == 0x20 && v6[1] == 0x01 && v6[2] == 0x0D && v6[3] == 0xB8;
    }

    /// <summary>The MIME type of common image formats from their first bytes, or null.</summary>
    public static string? SniffImageType(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith((ReadOnlySpan<byte>)[0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
        {
            return "image/png";
        }

        if (data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        {
            return "image/jpeg";
        }

        if (data.StartsWith("GIF87a"u8) || data.StartsWith("GIF89a"u8))
        {
            return "image/gif";
        }

        if (data.Length >= 12 && data.StartsWith("RIFF"u8) && data[8..12].SequenceEqual("WEBP"u8))
        {
            return "image/webp";
        }

        if (data.Length >= 12 && data[4..8].SequenceEqual("ftyp"u8))
        {
            var brand = data[8..12];
            if (brand.SequenceEqual("heic"u8) || brand.SequenceEqual("heix"u8))
            {
                return "image/heic";
            }

            if (brand.SequenceEqual("mif1"u8) || brand.SequenceEqual("msf1"u8))
            {
                return "image/heif";
            }
        }

        return null;
    }

    public void Dispose() => _http.Dispose();

    /// <summary>Raised in the connect callback when every address of a host is forbidden.</summary>
    private sealed class ForbiddenAddressException() : IOException("The host resolves only to forbidden addresses.");
}
