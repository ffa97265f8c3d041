namespace Shepherd.Tests.Providers.Gemini;

using System.Net;
using Microsoft.AspNetCore.Http;
using Shepherd.Providers.Gemini;
using Shepherd.Testing;

/// <summary>The image downloader's server-side request forgery guard and limits.</summary>
public sealed class ImageFetcherTests
{
    private static readonly byte[] Png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52];

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.255.0.9")]
    [InlineData("10.1.2.3")]
    [InlineData("172.16.0.1")]
    [InlineData("172.31.255.255")]
    [InlineData("192.168.1.1")]
    [InlineData("169.254.169.254")]
    [InlineData("100.64.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("224.0.0.1")]
    [InlineData("255.255.255.255")]
    [InlineData("::1")]
    [InlineData("::")]
    [InlineData("fe80::1")]
    [InlineData("fc00::1")]
    [InlineData("fd12:3456::1")]
    [InlineData("ff02::1")]
    [InlineData("::ffff:127.0.0.1")]
    [InlineData("::ffff:169.254.169.254")]
    [InlineData("64:ff9b::a00:1")]
    [InlineData("2002:c0a8:101::1")]
    public void IsForbidden_LocalPrivateAndSpecialAddresses_True(string address) =>
        Assert.True(ImageFetcher.IsForbidden(IPAddress.Parse(address)));

    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("1.1.1.1")]
    [InlineData("172.32.0.1")]
    [InlineData("100.128.0.1")]
    [InlineData("2001:4860:4860::8888")]
    [InlineData("::ffff:8.8.8.8")]
    [InlineData("2002:808:808::1")]
    public void IsForbidden_PublicAddresses_False(string address) =>
        Assert.False(ImageFetcher.IsForbidden(IPAddress.Parse(address)));

    [Theory]
    [InlineData("https://127.0.0.1/a.png")]
    [InlineData("https://[::1]/a.png")]
    [InlineData("https://169.254.169.254/latest/meta-data/")]
    [InlineData("https://[::ffff:10.0.0.1]/a.png")]
    [InlineData("https://2130706433/a.png")]
    public async Task FetchAsync_ForbiddenAddressLiteral_RefusedWithClearMessage(string url)
    {
        using var fetcher = new ImageFetcher();
        var result = await fetcher.FetchAsync(url, CancellationToken.None);

        Assert.Null(result.Image);
        Assert.Contains("private, loopback or link-local", result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://example.com/a.png")]
    [InlineData("ftp://example.com/a.png")]
    [InlineData("file:///etc/passwd")]
    [InlineData("not a url")]
    public async Task FetchAsync_NotHttps_Refused(string url)
    {
        using var fetcher = new ImageFetcher();
        var result = await fetcher.FetchAsync(url, CancellationToken.None);
        Assert.Contains("only https://", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FetchAsync_HostNameResolvingToLoopback_RefusedAtConnectWithoutReachingTheServer()
    {
        await using var server = await FakeUpstream.StartAsync((context, _) => context.Response.Body.WriteAsync(Png).AsTask());
        var port = new Uri(server.BaseUrl).Port;
        using var fetcher = new ImageFetcher();

        var result = await fetcher.FetchAsync($"https://localhost:{port}/a.png", CancellationToken.None);

        Assert.Contains("private, loopback or link-local", result.Error, StringComparison.Ordinal);
        Assert.Equal(0, server.StartedCount);
    }

    /// <summary>A fetcher that may reach 127.0.0.1 over plain http (only), to exercise the download path.</summary>
    private static ImageFetcher LoopbackFetcher(int maxBytes = 1024 * 1024, int timeoutMs = 10_000) =>
        new(a => !a.Equals(IPAddress.Loopback), requireHttps: false, TimeSpan.FromMilliseconds(timeoutMs), maxBytes);

    private static Task<FakeUpstream> ServeAsync(Func<HttpContext, Task> handler) => FakeUpstream.StartAsync((context, _) => handler(context));

    [Fact]
    public async Task FetchAsync_ImageWithContentType_InlinedAsBase64()
    {
        await using var server = await ServeAsync(async c =>
        {
            c.Response.ContentType = "image/PNG";
            await c.Response.Body.WriteAsync(Png);
        });
        using var fetcher = LoopbackFetcher();

        var result = await fetcher.FetchAsync(server.BaseUrl + "/a.png", CancellationToken.None);

        Assert.Null(result.Error);
        Assert.Equal("image/png", result.Image!.MimeType);
        Assert.Equal(Convert.ToBase64String(Png), result.Image.Base64Data);
    }

    [Fact]
    public async Task FetchAsync_GenericContentType_TypeSniffedFromBytes()
    {
        await using var server = await ServeAsync(async c =>
        {
            c.Response.ContentType = "application/octet-stream";
            await c.Response.Body.WriteAsync(Png);
        });
        using var fetcher = LoopbackFetcher();

        var result = await fetcher.FetchAsync(server.BaseUrl + "/a", CancellationToken.None);
        Assert.Equal("image/png", result.Image?.MimeType);
    }

    [Fact]
    public async Task FetchAsync_NotAnImage_Refused()
    {
        await using var server = await ServeAsync(async c =>
        {
            c.Response.ContentType = "text/html";
            await c.Response.WriteAsync("<html>login</html>");
        });
        using var fetcher = LoopbackFetcher();

        var result = await fetcher.FetchAsync(server.BaseUrl + "/a.png", CancellationToken.None);
        Assert.Contains("not an image", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FetchAsync_ErrorStatus_Refused()
    {
        await using var server = await ServeAsync(c =>
        {
            c.Response.StatusCode = 404;
            return Task.CompletedTask;
        });
        using var fetcher = LoopbackFetcher();

        var result = await fetcher.FetchAsync(server.BaseUrl + "/a.png", CancellationToken.None);
        Assert.Contains("HTTP 404", result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task FetchAsync_LargerThanLimit_RefusedWithOrWithoutContentLength(bool declareLength)
    {
        var big = new byte[4096];
        Png.CopyTo(big, 0);
        await using var server = await ServeAsync(async c =>
        {
            c.Response.ContentType = "image/png";
            if (declareLength)
            {
                c.Response.ContentLength = big.Length;
            }

            await c.Response.Body.WriteAsync(big);
        });
        using var fetcher = LoopbackFetcher(maxBytes: 1024);

        var result = await fetcher.FetchAsync(server.BaseUrl + "/big.png", CancellationToken.None);
        Assert.Contains("larger than", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FetchAsync_SlowServer_RefusedAfterTimeout()
    {
        await using var server = await ServeAsync(c => Task.Delay(Timeout.Infinite, c.RequestAborted));
        using var fetcher = LoopbackFetcher(timeoutMs: 300);

        var result = await fetcher.FetchAsync(server.BaseUrl + "/slow.png", CancellationToken.None);
        Assert.Contains("did not download within", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FetchAsync_RedirectToForbiddenAddress_RefusedAtConnect()
    {
        await using var server = await ServeAsync(c =>
        {
            // 127.0.0.2 is loopback too: the connect-time check must catch the hop, not only the first URL.
            c.Response.Redirect(c.Request.Scheme + "://127.0.0.2:" + c.Request.Host.Port + "/a.png");
            return Task.CompletedTask;
        });
        using var fetcher = LoopbackFetcher();

        var result = await fetcher.FetchAsync(server.BaseUrl + "/redirect", CancellationToken.None);
        Assert.Contains("private, loopback or link-local", result.Error, StringComparison.Ordinal);
        Assert.Equal(1, server.StartedCount);
    }
}
