namespace Factum.Sqlite.Tests;

public static class TempDir
{
    public static string Create()
    {
        var dir = Path.Combine(Path.GetTempPath(), "factum-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static void Delete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
