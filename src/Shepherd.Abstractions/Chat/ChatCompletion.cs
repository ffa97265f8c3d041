namespace Shepherd.Chat;

/// <summary>A non-streamed answer as an OpenAI <c>chat.completion</c> JSON object, with its usage read out.</summary>
/// <remarks>The JSON may live in a pooled buffer: dispose the completion once it has been written.</remarks>
public sealed class ChatCompletion : IDisposable
{
    private Action? _release;

    public ChatCompletion(ReadOnlyMemory<byte> json, Usage usage, Action? release = null)
    {
        Json = json;
        Usage = usage;
        _release = release;
    }

    public ReadOnlyMemory<byte> Json { get; private set; }

    public Usage Usage { get; }

    /// <summary>The upstream reported no usage; <see cref="Usage"/> is zero or an estimate.</summary>
    public bool UsageMissing { get; init; }

    public void Dispose()
    {
        Json = default;
        Interlocked.Exchange(ref _release, null)?.Invoke();
    }
}
