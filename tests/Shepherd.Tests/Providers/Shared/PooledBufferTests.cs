namespace Shepherd.Tests.Providers.Shared;

using Shepherd.Providers.Shared;

public sealed class PooledBufferTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(300)]
    [InlineData(4095)]
    [InlineData(4097)]
    [InlineData(100_000)]
    public async Task ReadFromAsync_DeclaredLength_ReadsExactlyTheBody(int length)
    {
        var data = Enumerable.Range(0, length).Select(i => (byte)i).ToArray();
        using var buffer = new PooledBuffer(length + 1);

        var ok = await buffer.ReadFromAsync(new MemoryStream(data), 1_000_000, expectedLength: length, null, CancellationToken.None);

        Assert.True(ok);
        Assert.Equal(data, buffer.WrittenSpan.ToArray());
    }

    [Fact]
    public async Task ReadFromAsync_StreamLongerThanDeclared_StillReadWhole()
    {
        var data = Enumerable.Range(0, 10_000).Select(i => (byte)i).ToArray();
        using var buffer = new PooledBuffer(101);

        var ok = await buffer.ReadFromAsync(new MemoryStream(data), 1_000_000, expectedLength: 100, null, CancellationToken.None);

        Assert.True(ok);
        Assert.Equal(data, buffer.WrittenSpan.ToArray());
    }

    [Fact]
    public async Task ReadFromAsync_OverTheLimit_ReturnsFalse()
    {
        using var buffer = new PooledBuffer(16);

        var ok = await buffer.ReadFromAsync(new MemoryStream(new byte[5000]), 4999, expectedLength: 5000, null, CancellationToken.None);

        Assert.False(ok);
    }
}
