namespace Shepherd.Providers.Shared;

using System.Buffers;

/// <summary>A growable byte buffer rented from <see cref="ArrayPool{T}"/>; return it with <see cref="Dispose"/>.</summary>
public sealed class PooledBuffer : IBufferWriter<byte>, IDisposable
{
    private byte[] _array;
    private int _length;

    public PooledBuffer(int initialCapacity = 4096)
    {
        _array = ArrayPool<byte>.Shared.Rent(Math.Max(initialCapacity, 256));
    }

    public int Length => _length;

    public ReadOnlyMemory<byte> WrittenMemory => _array.AsMemory(0, _length);

    public ReadOnlySpan<byte> WrittenSpan => _array.AsSpan(0, _length);

    public void Clear() => _length = 0;

    public void Advance(int count) => _length += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _array.AsMemory(_length);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _array.AsSpan(_length);
    }

    public void Write(ReadOnlySpan<byte> bytes)
    {
        Ensure(bytes.Length);
        bytes.CopyTo(_array.AsSpan(_length));
        _length += bytes.Length;
    }

    /// <summary>Reads <paramref name="stream"/> to its end, up to <paramref name="maxBytes"/>.</summary>
    /// <param name="expectedLength">The declared length, when known: reads then ask for just the room still
    /// needed (plus one byte to see the end), so a buffer sized for the body is never regrown. A stream that sends
    /// more than it declared still grows the buffer; the limit is <paramref name="maxBytes"/> either way.</param>
    /// <returns>False when the stream held more than <paramref name="maxBytes"/>.</returns>
    public async ValueTask<bool> ReadFromAsync(Stream stream, long maxBytes, long? expectedLength, Action? onRead, CancellationToken cancellationToken)
    {
        while (true)
        {
            var room = expectedLength is { } expected && expected >= _length ? (int)Math.Min(expected - _length + 1, 4096) : 4096;
            var memory = GetMemory(room);
            var read = await stream.ReadAsync(memory, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return true;
            }

            _length += read;
            onRead?.Invoke();
            if (_length > maxBytes)
            {
                return false;
            }
        }
    }

    private void Ensure(int sizeHint)
    {
        var needed = _length + Math.Max(sizeHint, 1);
        if (needed <= _array.Length)
        {
            return;
        }

        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, _array.Length * 2));
        _array.AsSpan(0, _length).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_array);
        _array = bigger;
    }

    public void Dispose()
    {
        var array = Interlocked.Exchange(ref _array, []);
        if (array.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(array);
        }

        _length = 0;
    }
}
