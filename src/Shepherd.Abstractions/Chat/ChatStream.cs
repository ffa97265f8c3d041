namespace Shepherd.Chat;

/// <summary>An open upstream stream, translated to neutral events as they arrive.</summary>
/// <remarks>
/// The enumerator is the stream: one pass, one consumer. Disposing it cancels and releases the upstream
/// connection at once, which is how a client disconnect reaches the provider.
/// </remarks>
public abstract class ChatStream : IAsyncEnumerator<StreamEvent>
{
    public abstract StreamEvent Current { get; }

    /// <summary>True when the next event is already buffered, so the writer may delay its flush.</summary>
    public virtual bool HasBufferedEvent => false;

    public abstract ValueTask<bool> MoveNextAsync();

    public abstract ValueTask DisposeAsync();
}
